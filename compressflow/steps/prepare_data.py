"""Rule ``prepare_data``: the seeded, stratified train/calib/val/test splits, streamed to disk."""

from __future__ import annotations

import sys

from compressflow import data


def prepare_data(inputs, outputs, params, threads):
    ds = params["dataset"]
    pre = ds["preprocess"]
    counts = data.write_splits(
        ds["kind"],
        ds["input_size"],
        ds["splits"],
        params["seed"],
        outputs,
        root=ds.get("root"),
        max_pixels=data.MAX_PIXELS_LIMIT,
        manifest=params.get("manifest"),
        pre=pre,
    )
    print(f"prepare_data: {counts} images; preprocess {pre}", file=sys.stderr)
