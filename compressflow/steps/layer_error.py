"""Rule ``layer_error``: per-layer output error of a quantized artifact against its float parent."""

from __future__ import annotations

import torch

from compressflow import artifacts, data, files
from compressflow.quantize import error
from compressflow.quantize.graph import (
    prepare,
)
from compressflow.quantize.qconfig import set_backend


def layer_error(inputs, outputs, params, threads):
    torch.set_num_threads(threads)
    q, recipe = artifacts.load_model(inputs["model"])
    parent, _ = artifacts.load_model(inputs["parent"])
    calib = data.load_split(inputs["calib"])
    t = recipe["transforms"][-1]
    if t["mode"] == "dynamic":
        reference = parent
    else:
        # Same fusion as the quantized model (Conv+BN+ReLU in one module, same name), float arithmetic.
        reference = prepare(parent, t["qconfig"], t["input_size"], fp32_layers=t.get("fp32_layers", ())).eval()
        set_backend(t["backend"])
    x, _ = next(data.batches(calib, params["batch_size"]))
    rows = error.layer_error(reference, q, x)
    files.write_csv(rows, outputs["csv"])
