"""Rule ``dynamic``: dynamic INT8 (Linear/LSTM weights int8, activations quantized on the fly)."""

from __future__ import annotations

import sys

import torch

from compressflow import artifacts, recipes
from compressflow.quantize import dynamic as qdynamic


def dynamic(inputs, outputs, params, threads):
    torch.set_num_threads(threads)
    model, recipe = artifacts.load_model(inputs["model"])
    q, names = qdynamic.quantize_dynamic(model, params["dtype"])
    engine = torch.backends.quantized.engine
    print(f"dynamic {params['dtype']}: {len(names)} layers {names}", file=sys.stderr)
    t = {
        "kind": "quantize",
        "mode": "dynamic",
        "stage": "converted",
        "backend": engine,
        "dtype": params["dtype"],
        "layer_types": ["Linear", "LSTM"],
        "qconfig": {"dtype": params["dtype"]},
        "fp32_layers": [],
        "int8_layers": names,
    }
    artifacts.save_model(q, recipes.with_transform(recipe, t), outputs["model"])
