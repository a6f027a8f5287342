"""Rule ``sensitivity``: per-unit INT8 sensitivity of the FP32 baseline (ranks units for mixed precision)."""

from __future__ import annotations

import torch

from compressflow import artifacts, data, files
from compressflow.quantize import mixed
from compressflow.quantize.graph import builder
from compressflow.quantize.qconfig import qconfig_spec
from compressflow.quantize.units import quantizable_units


def sensitivity(inputs, outputs, params, threads):
    torch.set_num_threads(threads)
    model, _ = artifacts.load_model(inputs["model"])
    calib, val = data.load_split(inputs["calib"]), data.load_split(inputs["val"])
    s = {
        "backend": "x86",
        "observer": "minmax",
        "activation": "affine",
        "per_channel": True,
        "calib_size": len(calib["y"]),
        **params["spec"],
    }
    spec = qconfig_spec(s["backend"], s["observer"], s["activation"], s["per_channel"])
    calib_size = min(int(s["calib_size"]), len(calib["y"]))
    rows = mixed.sensitivity(model, builder(model, spec, calib, calib_size), val, quantizable_units(model))
    files.write_csv(rows, outputs["csv"])
    mixed.plot_sensitivity(rows, outputs["plot"])
