"""Rule ``fuse``: fold BatchNorm into convolutions and prove the outputs are unchanged."""

from __future__ import annotations

import sys

import torch

from compressflow import artifacts, data, fusion, recipes
from compressflow.errors import CompressflowError


def fuse(inputs, outputs, params, threads):
    """Fold BN into convs and prove the fused model computes the same function."""
    torch.set_num_threads(threads)
    model, recipe = artifacts.load_model(inputs["model"])
    reference, _ = artifacts.load_model(inputs["model"])
    fused, pairs = fusion.fold_bn(model)
    x, _ = next(data.batches(data.load_split(inputs["val"]), 64))
    diff = fusion.max_output_diff(reference, fused, x)
    if diff > params["tolerance"]:
        raise CompressflowError(
            f"fused model differs from its parent by {diff:.3g} (> {params['tolerance']:g})",
            "report this model; fusion must not change outputs",
        )
    print(f"fused {len(pairs)} conv+bn pairs; max |logit diff| on a val batch = {diff:.3g}", file=sys.stderr)
    artifacts.save_model(fused, recipes.with_transform(recipe, {"kind": "fold_bn", "pairs": pairs}), outputs["model"])
