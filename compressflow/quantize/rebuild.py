"""Replay a recorded ``quantize`` transform before loading weights, so artifacts load with ``weights_only=True``."""

from __future__ import annotations

import torch
from torch import nn

from compressflow.quantize.dynamic import quantize_dynamic
from compressflow.quantize.graph import (
    convert,
    example_input,
    prepare,
)
from compressflow.quantize.qconfig import (
    set_backend,
)

__all__ = ["transform", "rebuild"]


def transform(mode: str, spec: dict, input_size: int, stage: str = "converted", fp32_layers=(), **extra) -> dict:
    return {
        "kind": "quantize",
        "mode": mode,
        "stage": stage,
        "backend": spec["backend"],
        "qconfig": dict(spec),
        "fp32_layers": list(fp32_layers),
        "input_size": int(input_size),
        **extra,
    }


def rebuild(model: nn.Module, transform: dict) -> nn.Module:
    """Replay prepare (and convert) with the recorded qconfig so the saved state dict fits."""
    set_backend(transform["backend"])
    if transform["mode"] == "dynamic":
        q, _ = quantize_dynamic(model, transform.get("dtype", "qint8"), transform.get("layer_types", ("Linear", "LSTM")))
        return q
    spec, size = transform["qconfig"], transform["input_size"]
    qat = transform["mode"] == "qat"
    prepared = prepare(model, spec, size, fp32_layers=transform.get("fp32_layers", ()), qat=qat)
    with torch.no_grad():
        prepared(example_input(size))
    if transform.get("stage") == "prepared":
        return prepared.eval()
    return convert(prepared)
