"""Rule ``prepare_data``: the seeded, stratified train/calib/val/test splits."""

from __future__ import annotations

from compressflow import data, files


def prepare_data(inputs, outputs, params, threads):
    ds = params["dataset"]
    splits = data.prepare(
        ds["kind"],
        ds["input_size"],
        ds["splits"],
        params["seed"],
        root=ds.get("root"),
        max_pixels=params.get("max_image_pixels", data.MAX_IMAGE_PIXELS),
        manifest=params.get("manifest"),
    )
    for name, split in splits.items():
        files.save_tensors(split, outputs[name])
