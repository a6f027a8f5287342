"""Rule ``ptq``: static PTQ, second half: convert the calibrated model to INT8 (optional bias correction)."""

from __future__ import annotations

import sys

import torch

from compressflow import artifacts, data, recipes
from compressflow.quantize import static
from compressflow.quantize.graph import convert
from compressflow.quantize.qconfig import set_backend


def ptq(inputs, outputs, params, threads):
    torch.set_num_threads(threads)
    prepared, recipe = artifacts.load_model(inputs["calibrated"])
    t = dict(recipe["transforms"][-1], stage="converted", bias_correction=bool(params["bias_correction"]))
    set_backend(t["backend"])
    q = convert(prepared)
    if params["bias_correction"]:
        calib = data.load_split(inputs["calib"])
        corrections = static.bias_correct(q, prepared, calib, t["calib_size"])
        print(f"bias correction on {len(corrections)} layers", file=sys.stderr)
    base = dict(recipe, transforms=recipe["transforms"][:-1])
    artifacts.save_model(q, recipes.with_transform(base, t), outputs["model"])
