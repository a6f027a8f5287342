"""``dataset.preprocess``: presets and overrides, resolved to one canonical mapping (torch-free).

The geometric part (``resize``, ``crop``, ``interpolation``) is applied once by ``prepare_data``
and stored as uint8; ``mean``/``std`` are applied in float by :func:`compressflow.data.to_input`,
the one function that feeds every model.
"""

from __future__ import annotations

from compressflow.errors import CompressflowError

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
KEYS = ("preset", "resize", "crop", "interpolation", "mean", "std")


def presets(input_size: int) -> dict:
    """The named presets. ``digits`` is the historic behaviour: a square resize to ``dataset.input_size``."""
    return {
        # torchvision.models.ResNet18_Weights.DEFAULT.transforms(): Resize(256) on the shorter side, CenterCrop(224).
        "imagenet": {"resize": 256, "crop": 224, "interpolation": "bilinear", "mean": IMAGENET_MEAN, "std": IMAGENET_STD},
        "digits": {"resize": [input_size, input_size], "crop": None, "interpolation": "bilinear", "mean": [0.5] * 3, "std": [0.5] * 3},
    }


def resolve(dataset: dict) -> dict:
    """``dataset.preprocess`` (a preset name or a mapping with ``preset`` and overrides) -> every key explicit."""
    raw = dataset.get("preprocess", "digits")
    if isinstance(raw, str):
        raw = {"preset": raw}
    if not isinstance(raw, dict):
        raise CompressflowError(
            "dataset.preprocess must be a preset name or a mapping", "use e.g. 'imagenet' or {preset: imagenet, crop: 64}"
        )
    table = presets(int(dataset["input_size"]))
    name = raw.get("preset", "digits")
    if name not in table:
        raise CompressflowError(f"dataset.preprocess.preset '{name}' is unknown", f"use one of: {', '.join(sorted(table))}")
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise CompressflowError(f"dataset.preprocess has unknown key(s) {', '.join(unknown)}", f"allowed keys: {', '.join(KEYS)}")
    out = {"preset": name, **table[name], **{k: v for k, v in raw.items() if k != "preset"}}
    resize, crop = out["resize"], out["crop"]
    if isinstance(resize, list):
        if len(resize) != 2 or not all(isinstance(v, int) and v >= 1 for v in resize):
            raise CompressflowError(f"dataset.preprocess.resize {resize} is not [height, width]", "use an integer (shorter side) or [h, w]")
    elif not (isinstance(resize, int) and resize >= 1):
        raise CompressflowError(f"dataset.preprocess.resize {resize!r} is not a positive integer", "use e.g. 256 (the shorter side)")
    if crop is not None and not (isinstance(crop, int) and crop >= 1):
        raise CompressflowError(f"dataset.preprocess.crop {crop!r} is not a positive integer", "use e.g. 224, or null for no crop")
    if out["interpolation"] not in INTERPOLATIONS:
        raise CompressflowError(
            f"dataset.preprocess.interpolation '{out['interpolation']}' is unknown", f"use one of: {', '.join(INTERPOLATIONS)}"
        )
    for key in ("mean", "std"):
        v = out[key]
        if isinstance(v, (int, float)):
            v = [float(v)] * 3
        if not (isinstance(v, list) and len(v) == 3 and all(isinstance(c, (int, float)) for c in v)):
            raise CompressflowError(f"dataset.preprocess.{key} {out[key]!r} is not 3 numbers", f"give one {key} per RGB channel")
        if key == "std" and min(v) <= 0:
            raise CompressflowError(f"dataset.preprocess.std {v} has a value <= 0", "use positive standard deviations")
        out[key] = [float(c) for c in v]
    if crop is not None:
        short = min(resize) if isinstance(resize, list) else resize
        if crop > short:
            raise CompressflowError(
                f"dataset.preprocess.crop {crop} is larger than the resized image ({resize}): the crop would be zero padding",
                f"use a crop of at most {short}, or resize to at least {crop}",
            )
    if crop is None and not isinstance(resize, list):
        raise CompressflowError(
            "dataset.preprocess has a shorter-side resize but no crop: images would have different shapes",
            "set crop (e.g. crop: 224) or resize to [h, w]",
        )
    return out


def model_size(pre: dict) -> int:
    """The square side of the images the models see."""
    if pre["crop"] is not None:
        return int(pre["crop"])
    h, w = pre["resize"]
    if h != w:
        raise CompressflowError(
            f"dataset.preprocess.resize {pre['resize']} is not square and there is no crop", "set crop, or a square resize"
        )
    return int(h)
