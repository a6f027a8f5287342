"""Datasets: the embedded digits set (no download) or a user's ImageFolder tree.

Images are stored once as uint8 ``[N, 3, S, S]`` tensors per split; ``to_input``
normalises them the same way everywhere (training, calibration, evaluation, export).
"""

from __future__ import annotations

import contextlib
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


# Pillow's own default: its DecompressionBombError fires at twice this, with a traceback.
MAX_IMAGE_PIXELS = 89_478_485
# Modes that become 8-bit RGB without guessing: Pillow's conversions, plus 16-bit grey scaled by 1/257.
SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
RGB_MODES = {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"} | SIXTEEN_BIT_MODES


@contextlib.contextmanager
def _own_pixel_limit():
    """Pillow's global bomb check off while we apply dataset.max_image_pixels ourselves, naming the file."""
    from PIL import Image

    saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def scan_imagefolder(root, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[list[tuple[Path, int]], list[str], list[dict]]:
    """``root/<class>/<image>`` like torchvision's ImageFolder, strict about what it finds.

    Cheap enough to run before any job starts: it reads each file once, checks its header
    (mode, size) and integrity, and returns the manifest (relative path, size, mtime, sha256)
    whose digest makes the images an input of ``prepare_data``.
    """
    import hashlib
    import io as _io

    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    if root.is_file():
        raise CompressflowError(
            f"dataset.root '{root}' is a file, not a directory", "point dataset.root at a folder with one sub-folder per class"
        )
    if not root.is_dir():
        raise CompressflowError(f"dataset.root '{root}' is not a directory", "point dataset.root at a folder with one sub-folder per class")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise CompressflowError(
            f"dataset.root '{root}' has {len(classes)} class folders", "put each class's images in its own sub-folder (at least 2)"
        )
    items, manifest = [], []
    for label, name in enumerate(classes):
        images = sorted(p for p in (root / name).rglob("*") if p.is_file() and not p.name.startswith("."))
        if not images:
            raise CompressflowError(f"class folder '{root / name}' has no images", "add images to it or remove the folder")
        for path in images:
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise CompressflowError(
                    f"'{path}' is not an image file (suffix '{path.suffix}')",
                    f"remove it; accepted suffixes: {' '.join(sorted(IMAGE_SUFFIXES))}",
                )
            blob = path.read_bytes()
            try:
                with _own_pixel_limit(), Image.open(_io.BytesIO(blob)) as im:
                    width, height = im.size
                    mode = im.mode
                    if width * height > max_pixels:
                        raise CompressflowError(
                            f"image '{path}' has {width}x{height} = {width * height} pixels, more than dataset.max_image_pixels ({max_pixels})",
                            "shrink or remove it, or raise dataset.max_image_pixels if the file is trusted",
                        )
                    im.verify()
            except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
                raise CompressflowError(
                    f"image '{path}' cannot be read ({type(exc).__name__})", "replace or remove the corrupt file"
                ) from exc
            if mode not in RGB_MODES:
                raise CompressflowError(
                    f"image '{path}' has mode '{mode}', which cannot be converted to 8-bit RGB faithfully",
                    "convert it to 8- or 16-bit greyscale or RGB (e.g. PNG) or remove it",
                )
            items.append((path, label))
            st = path.stat()
            manifest.append(
                {
                    "path": path.relative_to(root).as_posix(),
                    "size": st.st_size,
                    "mtime": st.st_mtime_ns,
                    "sha256": hashlib.sha256(blob).hexdigest(),
                }
            )
    return items, classes, manifest


def manifest_digest(manifest: list[dict]) -> str:
    """One hash of the tree's content: paths and bytes (a touched but unchanged image changes nothing)."""
    import hashlib

    lines = "".join(f"{e['path']}\t{e['size']}\t{e['sha256']}\n" for e in sorted(manifest, key=lambda e: e["path"]))
    return hashlib.sha256(lines.encode()).hexdigest()


def to_rgb8(im, path) -> np.ndarray:
    """An opened image as 8-bit RGB ``[H, W, 3]``, upright, whatever its mode and bit depth.

    EXIF orientation is applied; 16-bit grey is scaled (65535 -> 255) rather than clipped; alpha is
    dropped like torchvision's loader does; CMYK and palette images go through Pillow's conversion.
    """
    from PIL import ImageOps

    im = ImageOps.exif_transpose(im)
    if im.mode in SIXTEEN_BIT_MODES:
        arr = np.asarray(im).astype(np.float64)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise CompressflowError(
                f"image '{path}' has {im.mode} values outside 0..65535, which cannot be scaled to 8 bit faithfully",
                "save it as 8- or 16-bit greyscale or RGB",
            )
        grey = np.clip(np.round(arr / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if im.mode not in RGB_MODES:
        raise CompressflowError(
            f"image '{path}' has mode '{im.mode}', which cannot be converted to 8-bit RGB faithfully",
            "convert it to 8- or 16-bit greyscale or RGB (e.g. PNG) or remove it",
        )
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def load_imagefolder(root, input_size: int, max_pixels: int = MAX_IMAGE_PIXELS):
    """All images of the tree as 8-bit RGB (see ``to_rgb8``), resized; and the tree's manifest."""
    from PIL import Image

    items, classes, manifest = scan_imagefolder(root, max_pixels)
    images = []
    for path, _ in items:
        try:
            with _own_pixel_limit(), Image.open(path) as im:
                rgb = Image.fromarray(to_rgb8(im, path), "RGB")
                arr = np.asarray(rgb.resize((input_size, input_size), Image.BILINEAR), dtype=np.uint8)
        except OSError as exc:
            raise CompressflowError(f"image '{path}' cannot be decoded ({exc})", "replace or remove the corrupt file") from exc
        images.append(torch.from_numpy(arr.copy()).permute(2, 0, 1))
    return torch.stack(images), torch.tensor([label for _, label in items], dtype=torch.int64), classes, manifest


def num_classes(kind: str, root=None, max_pixels: int = MAX_IMAGE_PIXELS) -> int:
    if kind == "digits":
        return 10
    return len(scan_imagefolder(root, max_pixels)[1])


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


def prepare(kind: str, input_size: int, fractions: dict, seed: int, root=None, max_pixels: int = MAX_IMAGE_PIXELS, manifest=None) -> dict:
    """All splits as dicts of tensors, ready for ``torch.save``.

    ``manifest`` is the digest the workflow planned with: images changed since then are an error,
    not splits silently built from other images than the ones the provenance names.
    """
    if kind == "digits":
        x, y, classes = load_digits(input_size)
    elif kind == "imagefolder":
        x, y, classes, found = load_imagefolder(root, input_size, max_pixels)
        if manifest is not None and manifest_digest(found) != manifest:
            raise CompressflowError(f"the images in dataset.root '{root}' changed while the workflow ran", "rerun the workflow")
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
    from compressflow import files

    split = files.load_tensors(path, "data split")
    if not isinstance(split, dict) or "x" not in split or "y" not in split:
        raise CompressflowError(f"data split '{path}' has no 'x'/'y' tensors", "re-run the prepare_data rule")
    return split


def batches(split: dict, batch_size: int, limit: int | None = None):
    """Float input batches and labels in stored order (deterministic)."""
    n = len(split["y"]) if limit is None else min(limit, len(split["y"]))
    for i in range(0, n, batch_size):
        j = min(i + batch_size, n)
        yield to_input(split["x"][i:j]), split["y"][i:j]
