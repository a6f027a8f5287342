"""Datasets: the embedded digits set (no download) or a user's ImageFolder tree.

Images are stored once as uint8 ``[N, 3, S, S]`` tensors per split; ``to_input``
normalises them the same way everywhere (training, calibration, evaluation, export).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from compressflow.errors import CompressflowError

SPLITS = ("train", "calib", "val", "test")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
MEAN, STD = 0.5, 0.5


def _resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of uint8 ``[N, C, H, W]`` images to ``size`` x ``size``."""
    x = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8)


def load_digits(input_size: int):
    """scikit-learn's bundled 8x8 digits (1797 real images) as 3-channel uint8 images."""
    from sklearn.datasets import load_digits as _load

    bunch = _load()
    img = torch.from_numpy((bunch.images / 16.0 * 255.0).round().astype(np.uint8))[:, None]
    img = _resize_uint8(img, input_size).expand(-1, 3, -1, -1).contiguous()
    y = torch.from_numpy(bunch.target.astype(np.int64))
    return img, y, [str(c) for c in bunch.target_names]


def scan_imagefolder(root) -> tuple[list[tuple[Path, int]], list[str]]:
    """``root/<class>/<image>`` like torchvision's ImageFolder, strict about what it finds.

    Cheap enough to run before any job starts: it checks the tree and each image's header.
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    if not root.is_dir():
        raise CompressflowError(f"dataset.root '{root}' is not a directory", "point dataset.root at a folder with one sub-folder per class")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise CompressflowError(
            f"dataset.root '{root}' has {len(classes)} class folders", "put each class's images in its own sub-folder (at least 2)"
        )
    items = []
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).rglob("*") if p.is_file() and not p.name.startswith("."))
        if not files:
            raise CompressflowError(f"class folder '{root / name}' has no images", "add images to it or remove the folder")
        for path in files:
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise CompressflowError(
                    f"'{path}' is not an image file (suffix '{path.suffix}')",
                    f"remove it; accepted suffixes: {' '.join(sorted(IMAGE_SUFFIXES))}",
                )
            try:
                with Image.open(path) as im:
                    im.verify()
            except (UnidentifiedImageError, OSError, SyntaxError) as exc:
                raise CompressflowError(
                    f"image '{path}' cannot be read ({type(exc).__name__})", "replace or remove the corrupt file"
                ) from exc
            items.append((path, label))
    return items, classes


def load_imagefolder(root, input_size: int):
    """All images of the tree, converted to RGB (grey and palette images included) and resized."""
    from PIL import Image

    items, classes = scan_imagefolder(root)
    images = []
    for path, _ in items:
        try:
            with Image.open(path) as im:
                arr = np.asarray(im.convert("RGB").resize((input_size, input_size), Image.BILINEAR), dtype=np.uint8)
        except OSError as exc:
            raise CompressflowError(f"image '{path}' cannot be decoded ({exc})", "replace or remove the corrupt file") from exc
        images.append(torch.from_numpy(arr.copy()).permute(2, 0, 1))
    return torch.stack(images), torch.tensor([label for _, label in items], dtype=torch.int64), classes


def num_classes(kind: str, root=None) -> int:
    if kind == "digits":
        return 10
    return len(scan_imagefolder(root)[1])


def split_indices(y: torch.Tensor, fractions: dict, seed: int) -> dict:
    """Stratified, seeded split into the named fractions (which must sum to 1)."""
    from sklearn.model_selection import train_test_split

    names = [n for n in SPLITS if fractions.get(n, 0) > 0]
    total = sum(fractions[n] for n in names)
    if abs(total - 1.0) > 1e-6:
        raise CompressflowError(f"dataset.splits sum to {total:g}", "make train + calib + val + test = 1")
    idx = np.arange(len(y))
    labels = y.numpy()
    out, remaining = {}, 1.0
    for i, name in enumerate(names[:-1]):
        frac = fractions[name] / remaining
        try:
            take, idx = train_test_split(idx, train_size=frac, random_state=seed + i, stratify=labels[idx])
        except ValueError as exc:
            raise CompressflowError(
                f"cannot split {len(labels)} images stratified into '{name}' ({exc})", "add images per class or change dataset.splits"
            ) from exc
        out[name] = np.sort(take)
        remaining -= fractions[name]
    out[names[-1]] = np.sort(idx)
    return out


def prepare(kind: str, input_size: int, fractions: dict, seed: int, root=None) -> dict:
    """All splits as dicts of tensors, ready for ``torch.save``."""
    if kind == "digits":
        x, y, classes = load_digits(input_size)
    elif kind == "imagefolder":
        x, y, classes = load_imagefolder(root, input_size)
    else:
        raise CompressflowError(f"unknown dataset.kind '{kind}'", "use 'digits' or 'imagefolder'")
    parts = split_indices(y, fractions, seed)
    return {
        name: {
            "x": x[torch.from_numpy(ix)].contiguous(),
            "y": y[torch.from_numpy(ix)].contiguous(),
            "classes": classes,
            "mean": MEAN,
            "std": STD,
        }
        for name, ix in parts.items()
    }


def to_input(x_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 images -> the float tensor every model sees."""
    return (x_uint8.float() / 255.0 - MEAN) / STD


def load_split(path) -> dict:
    from compressflow import io

    split = io.load_tensors(path, "data split")
    if not isinstance(split, dict) or "x" not in split or "y" not in split:
        raise CompressflowError(f"data split '{path}' has no 'x'/'y' tensors", "re-run the prepare_data rule")
    return split


def batches(split: dict, batch_size: int, limit: int | None = None):
    """Float input batches and labels in stored order (deterministic)."""
    n = len(split["y"]) if limit is None else min(limit, len(split["y"]))
    for i in range(0, n, batch_size):
        j = min(i + batch_size, n)
        yield to_input(split["x"][i:j]), split["y"][i:j]
