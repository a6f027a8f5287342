"""Datasets: the embedded digits set (no download) or a user's ImageFolder tree.

``prepare_data`` applies the geometric part of ``dataset.preprocess`` (decode, RGB, resize, crop)
once and writes per split a small metadata file (labels, classes, preprocess, the source files
with their sha256) and a uint8 ``[N, 3, H, W]`` ``.npy`` cache beside it, written and read in
batches with explicit reads: no job holds a whole split in memory. ``to_input`` normalises in
float the same way everywhere (training, calibration, evaluation, export, runtimes).
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from compressflow import modelspec
from compressflow import preprocess as pp
from compressflow.errors import CompressflowError

SPLITS = ("train", "calib", "val", "test")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
MEAN, STD = 0.5, 0.5  # the digits preset's, for splits made in memory without a preprocess


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


# The pixel limit of this job (smk.run sets it from dataset.max_image_pixels; not a param: no byte depends on it).
MAX_PIXELS_LIMIT = MAX_IMAGE_PIXELS

DECODE_CACHE = Path(".snakemake") / "compressflow" / "decoded.txt"


def scan_imagefolder(root, max_pixels: int = MAX_IMAGE_PIXELS, decode_cache=None) -> tuple[list[tuple[Path, int]], list[str], list[dict]]:
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
    items, manifest, hidden = [], [], []
    decoded = _DecodeCache(decode_cache)
    for label, name in enumerate(classes):
        images = _class_files(root / name, hidden)
        if not images:
            raise CompressflowError(f"class folder '{root / name}' has no images", "add images to it or remove the folder")
        for path in images:
            shown = _printable(path)
            if shown != str(path):
                raise CompressflowError(
                    f"file name '{shown}' is not valid UTF-8", "rename it with UTF-8 characters (e.g. convmv -f latin1 -t utf8)"
                )
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise CompressflowError(
                    f"'{path}' is not an image file (suffix '{path.suffix}')",
                    f"remove it; accepted suffixes: {' '.join(sorted(IMAGE_SUFFIXES))}",
                )
            blob = path.read_bytes()
            digest = hashlib.sha256(blob).hexdigest()
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
                if digest not in decoded:
                    # verify() reads no JPEG pixels: a truncated JPEG passes it. New or changed images are decoded
                    # in full once (the cache remembers which bytes decoded), so prepare_data never fails on one.
                    with _own_pixel_limit(), Image.open(_io.BytesIO(blob)) as im:
                        im.load()
                    decoded.add(digest)
            except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
                raise CompressflowError(
                    f"image '{path}' cannot be read ({type(exc).__name__}: {str(exc)[:80]})", "replace or remove the corrupt file"
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
                    "sha256": digest,
                }
            )
    decoded.save()
    if hidden:
        print(
            f"compressflow: skipped {len(hidden)} hidden folder(s) inside class folders ({', '.join(sorted(map(str, hidden))[:3])}"
            f"{', ...' if len(hidden) > 3 else ''}): copies such as .ipynb_checkpoints would leak between splits",
            file=sys.stderr,
        )
    return items, classes, manifest


def _class_files(folder: Path, hidden: list) -> list[Path]:
    """The files of one class folder as torchvision's ImageFolder finds them (os.walk following symlinks), without
    hidden files and hidden folders (``hidden`` collects those folders for the caller's warning)."""
    found = []
    for here, dirs, names in os.walk(folder, followlinks=True):
        for d in [d for d in dirs if d.startswith(".")]:
            hidden.append(Path(here, d))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(here, n) for n in names if not n.startswith(".") and Path(here, n).is_file()]
    return sorted(found)


def _printable(path: Path) -> str:
    """The path as text; a name that is not UTF-8 shows its bytes escaped (so it can be named in a one-line error)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


class _DecodeCache:
    """sha256 of the images that decoded in full before (``.snakemake/compressflow/decoded.txt``): only new bytes are decoded."""

    def __init__(self, path):
        self.path = Path(path) if path else None
        self.known: set[str] = set()
        self.new: set[str] = set()
        if self.path is not None and self.path.is_file():
            try:
                self.known = set(self.path.read_text().split())
            except OSError:
                pass

    def __contains__(self, digest: str) -> bool:
        return digest in self.known or digest in self.new

    def add(self, digest: str) -> None:
        self.new.add(digest)

    def save(self) -> None:
        if self.path is None or not self.new:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write("".join(d + "\n" for d in sorted(self.new)))
        except OSError:
            pass  # a read-only workdir: images are decoded again next time


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
            try:
                take, idx = train_test_split(idx, train_size=frac, random_state=seed + i, stratify=labels[idx])
            except ValueError as exc:  # e.g. 1000 classes with 1-2 images each: seeded, but not stratified
                print(f"WARNING: split '{name}' cannot be stratified ({str(exc)[:120]}...): split at random (seeded)", file=sys.stderr)
                take, idx = train_test_split(idx, train_size=frac, random_state=seed + i)
        except ValueError as exc:
            raise CompressflowError(
                f"cannot split {len(labels)} images stratified into '{name}' ({exc})", "add images per class or change dataset.splits"
            ) from exc
        out[name] = np.sort(take)
        remaining -= fractions[name]
    out[names[-1]] = np.sort(idx)
    return out


# --- geometric preprocessing (once, stored as uint8) ---


def _interpolation(name: str):
    InterpolationMode = modelspec.import_torchvision().transforms.InterpolationMode

    return {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC, "nearest": InterpolationMode.NEAREST}[name]


def geometric(rgb, pre: dict) -> np.ndarray:
    """A PIL RGB image -> uint8 ``[3, H, W]``: torchvision's ``Resize`` then ``CenterCrop`` on PIL (antialiased)."""
    TF = modelspec.import_torchvision().transforms.functional

    img = TF.resize(rgb, pre["resize"], interpolation=_interpolation(pre["interpolation"]))
    if pre["crop"] is not None:
        img = TF.center_crop(img, pre["crop"])
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1))


def decode(path, pre: dict) -> np.ndarray:
    """One image file -> uint8 ``[3, H, W]`` after ``to_rgb8`` and the geometric preprocess."""
    from PIL import Image

    try:
        with _own_pixel_limit(), Image.open(path) as im:
            return geometric(Image.fromarray(to_rgb8(im, path), "RGB"), pre)
    except OSError as exc:
        raise CompressflowError(f"image '{path}' cannot be decoded ({exc})", "replace or remove the corrupt file") from exc


def load_imagefolder(root, input_size: int, max_pixels: int = MAX_IMAGE_PIXELS, pre: dict | None = None):
    """All images of a (small) tree in memory, preprocessed; and its manifest. The workflow streams instead."""
    pre = pre or default_preprocess(input_size)
    items, classes, manifest = scan_imagefolder(root, max_pixels)
    x = torch.stack([torch.from_numpy(decode(path, pre)) for path, _ in items])
    return x, torch.tensor([label for _, label in items], dtype=torch.int64), classes, manifest


def default_preprocess(input_size: int) -> dict:
    return pp.resolve({"input_size": input_size, "preprocess": "digits"})


def _source(kind: str, pre: dict, input_size: int, root, max_pixels: int, manifest):
    """(labels, classes, files, image_of(i)) of the whole dataset; images are produced one at a time."""
    if kind == "digits":
        if pre == default_preprocess(input_size):
            x, y, classes = load_digits(input_size)  # the historic bytes: torch bilinear from 8x8
            return y, classes, [], lambda i: x[i].numpy()
        from PIL import Image
        from sklearn.datasets import load_digits as _load

        bunch = _load()
        raw = (bunch.images / 16.0 * 255.0).round().astype(np.uint8)
        y = torch.from_numpy(bunch.target.astype(np.int64))
        return y, [str(c) for c in bunch.target_names], [], lambda i: geometric(Image.fromarray(raw[i], "L").convert("RGB"), pre)
    if kind != "imagefolder":
        raise CompressflowError(f"unknown dataset.kind '{kind}'", "use 'digits' or 'imagefolder'")
    items, classes, found = scan_imagefolder(root, max_pixels, DECODE_CACHE)
    if manifest is not None and manifest_digest(found) != manifest:
        raise CompressflowError(f"the images in dataset.root '{root}' changed while the workflow ran", "rerun the workflow")
    y = torch.tensor([label for _, label in items], dtype=torch.int64)
    files = [{"path": e["path"], "label": label, "sha256": e["sha256"]} for e, (_, label) in zip(found, items, strict=True)]
    return y, classes, files, lambda i: decode(items[i][0], pre)


def _splits(kind, input_size, fractions, seed, root, max_pixels, manifest, pre):
    pre = pre or default_preprocess(input_size)
    y, classes, files, image_of = _source(kind, pre, input_size, root, max_pixels, manifest)
    parts = split_indices(y, fractions, seed)
    for name, ix in parts.items():
        meta = {
            "y": y[torch.from_numpy(ix)].contiguous(),
            "classes": classes,
            "preprocess": pre,
            "mean": pre["mean"],
            "std": pre["std"],
            "files": [files[i] for i in ix] if files else [],
        }
        yield name, meta, (image_of(int(i)) for i in ix)


def prepare(
    kind: str, input_size: int, fractions: dict, seed: int, root=None, max_pixels: int = MAX_IMAGE_PIXELS, manifest=None, pre=None
) -> dict:
    """All splits in memory as dicts of tensors (small data and tests; the workflow streams with ``write_splits``).

    ``manifest`` is the digest the workflow planned with: images changed since then are an error,
    not splits silently built from other images than the ones the provenance names.
    """
    out = {}
    for name, meta, images in _splits(kind, input_size, fractions, seed, root, max_pixels, manifest, pre):
        out[name] = {"x": torch.stack([torch.from_numpy(np.array(a)) for a in images]).contiguous(), **meta}
    return out


def write_splits(
    kind: str,
    input_size: int,
    fractions: dict,
    seed: int,
    outputs: dict,
    root=None,
    max_pixels: int = MAX_IMAGE_PIXELS,
    manifest=None,
    pre=None,
) -> dict:
    """Each split streamed to ``outputs[name]`` (metadata) and ``outputs[name + '_cache']`` (uint8 ``.npy``)."""
    from compressflow import files

    pre = pre or default_preprocess(input_size)
    side = pp.model_size(pre) if pre["crop"] is not None else None
    h, w = (side, side) if side else tuple(pre["resize"])
    written = {}
    for name, meta, images in _splits(kind, input_size, fractions, seed, root, max_pixels, manifest, pre):
        cache = Path(outputs[f"{name}_cache"])
        digest = write_cache(images, (len(meta["y"]), 3, h, w), cache)
        meta["cache"] = {"file": cache.name, "shape": [len(meta["y"]), 3, h, w], "sha256": digest}
        files.save_tensors(meta, outputs[name])
        written[name] = len(meta["y"])
    return written


# --- the uint8 cache: one .npy per split, read with explicit reads ---


def write_cache(images, shape: tuple, path) -> str:
    """Stream uint8 ``[3, H, W]`` images into a ``.npy`` of ``shape`` (atomically); returns its sha256."""
    import hashlib

    from compressflow import files

    header = _npy_header(shape)
    item = int(np.prod(shape[1:]))
    digest, count = hashlib.sha256(header), 0
    with files.atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(header)
        for arr in images:
            arr = np.asarray(arr, dtype=np.uint8)
            if arr.shape != tuple(shape[1:]):
                raise CompressflowError(f"a preprocessed image has shape {arr.shape}, not {tuple(shape[1:])}", "check dataset.preprocess")
            blob = arr.tobytes()
            f.write(blob)
            digest.update(blob)
            count += 1
        if count != shape[0]:
            raise CompressflowError(f"wrote {count} images into '{path}', expected {shape[0]}", "re-run the prepare_data rule")
    assert item * count + len(header) == Path(path).stat().st_size
    return digest.hexdigest()


def _npy_header(shape: tuple) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False, "shape": tuple(int(s) for s in shape)})
    return buf.getvalue()


class ImageCache:
    """Lazy uint8 ``[N, 3, H, W]`` images of one ``.npy``: ``cache[i:j]`` / ``cache[index_tensor]`` read only those rows.

    Reads are ``os.pread`` calls, not a memory map, so a pass over a split leaves RSS flat.
    ``bytes_read`` counts what was read (tests check a batch reads only its rows).
    """

    def __init__(self, path, shape=None):
        self.path = str(path)
        with open(self.path, "rb") as f:
            major, minor = np.lib.format.read_magic(f)
            hdr = np.lib.format.read_array_header_1_0(f) if major == 1 else np.lib.format.read_array_header_2_0(f)
            self.offset = f.tell()
        found, _, dtype = hdr
        if dtype != np.uint8 or len(found) != 4 or (shape is not None and list(found) != list(shape)):
            raise CompressflowError(f"image cache '{path}' has shape {found} {dtype}, not {shape} uint8", "re-run the prepare_data rule")
        self.shape = torch.Size(found)
        self.item = int(np.prod(found[1:]))
        size = os.path.getsize(self.path)
        if size != self.offset + self.item * found[0]:
            raise CompressflowError(f"image cache '{path}' is truncated ({size} bytes)", "re-run the prepare_data rule")
        self.bytes_read = 0
        self._fd = None

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_fd"} | {"_fd": None}

    def __del__(self):
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)

    def __len__(self) -> int:
        return int(self.shape[0])

    def _rows(self, start: int, count: int) -> np.ndarray:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        nbytes = count * self.item
        blob = os.pread(self._fd, nbytes, self.offset + start * self.item)
        if len(blob) != nbytes:
            raise CompressflowError(f"image cache '{self.path}' is truncated", "re-run the prepare_data rule")
        self.bytes_read += nbytes
        return np.frombuffer(blob, dtype=np.uint8).reshape(count, *self.shape[1:])

    def __getitem__(self, key) -> torch.Tensor:
        n = len(self)
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            if step == 1:
                return torch.from_numpy(self._rows(start, max(0, stop - start)).copy())
            key = list(range(start, stop, step))
        if isinstance(key, int):
            return self[[key]][0]
        idx = [int(i) for i in (key.tolist() if isinstance(key, torch.Tensor) else key)]
        out = np.empty((len(idx), *self.shape[1:]), dtype=np.uint8)
        for k, i in enumerate(idx):
            if not -n <= i < n:
                raise IndexError(f"index {i} out of range for {n} images")
            out[k] = self._rows(i % n, 1)[0]
        return torch.from_numpy(out)


class Split(dict):
    """A split's metadata with ``split["x"]`` an :class:`ImageCache` (a dict, so every caller keeps working)."""


def load_split(path) -> dict:
    from compressflow import files

    split = files.load_tensors(path, "data split")
    if not isinstance(split, dict) or "y" not in split or ("x" not in split and "cache" not in split):
        raise CompressflowError(f"data split '{path}' has no images or labels", "re-run the prepare_data rule")
    if "x" in split:
        return split  # a split made in memory (tests, small tools)
    cache = split["cache"]
    out = Split(split)
    out["x"] = ImageCache(Path(path).parent / cache["file"], cache["shape"])
    if len(out["x"]) != len(split["y"]):
        raise CompressflowError(
            f"data split '{path}' has {len(split['y'])} labels but {len(out['x'])} images", "re-run the prepare_data rule"
        )
    return out


# --- the float inputs every model sees ---


def preprocess_of(split) -> dict | None:
    return split.get("preprocess") if isinstance(split, dict) else None


def to_input(x_uint8: torch.Tensor, pre: dict | None = None) -> torch.Tensor:
    """uint8 images -> the float tensor every model sees: ``(x / 255 - mean) / std`` per channel.

    ``pre`` is the split's ``preprocess`` (``split["preprocess"]``); None means the digits preset's 0.5/0.5.
    """
    x = x_uint8.float() / 255.0
    if pre is None:
        return (x - MEAN) / STD
    mean = torch.tensor(pre["mean"], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(pre["std"], dtype=torch.float32).view(1, -1, 1, 1)
    return (x - mean) / std


def augment(x: torch.Tensor, spec: dict | None, gen: torch.Generator) -> torch.Tensor:
    """Fine-tuning augmentation on uint8 ``[B, 3, S, S]``: random-resized-crop (scale range) and horizontal flip.

    ``spec`` is ``train.augment`` (None or all off: ``x`` unchanged); ``gen`` makes it seeded.
    """
    if not spec:
        return x
    scale, flip = spec.get("scale"), spec.get("hflip", False)
    if not scale and not flip:
        return x
    out = x.clone()
    size = x.shape[-1]
    for k in range(len(x)):
        img = x[k]
        if scale:
            lo, hi = scale
            area = float(torch.empty(1).uniform_(lo, hi, generator=gen)) * size * size
            side = max(1, min(size, round(area**0.5)))
            top = int(torch.randint(0, size - side + 1, (1,), generator=gen))
            left = int(torch.randint(0, size - side + 1, (1,), generator=gen))
            crop = img[:, top : top + side, left : left + side].float()[None]
            img = F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False)[0].round().clamp(0, 255).to(torch.uint8)
        if flip and bool(torch.rand(1, generator=gen) < 0.5):
            img = img.flip(-1)
        out[k] = img
    return out


class _Batches(torch.utils.data.Dataset):
    """One item = one batch (a slice or index tensor), read, augmented and normalised in the worker."""

    def __init__(self, split, augment_spec=None, seed=0):
        self.split, self.augment_spec, self.seed = split, augment_spec, seed

    def __len__(self):
        return len(self.split["y"])

    def __getitem__(self, item):
        key, tag = item
        x = self.split["x"][key]
        if self.augment_spec:
            x = augment(x, self.augment_spec, torch.Generator().manual_seed(self.seed * 1_000_003 + tag))
        return to_input(x, preprocess_of(self.split)), self.split["y"][key]


WORKERS = 0  # dataset.workers, set by compressflow.smk for the job


def loader(split, keys, workers: int | None = None, augment_spec=None, seed: int = 0):
    """A DataLoader over ``keys`` (slices or index tensors, one per batch) in that order."""
    workers = WORKERS if workers is None else workers
    return torch.utils.data.DataLoader(
        _Batches(split, augment_spec, seed),
        batch_size=None,
        sampler=list(zip(keys, range(len(keys)), strict=True)),
        num_workers=workers,
        multiprocessing_context="spawn" if workers else None,
    )


def batches(split: dict, batch_size: int, limit: int | None = None, workers: int | None = None):
    """Float input batches and labels in stored order (deterministic), streamed from the split's cache."""
    n = len(split["y"]) if limit is None else min(limit, len(split["y"]))
    keys = [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    yield from loader(split, keys, workers=workers)
