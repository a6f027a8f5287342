"""Quantization error: per-layer output MSE and SQNR of a quantized model against its float reference."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["float_outputs", "sqnr_db", "layer_error"]


def float_outputs(model: nn.Module, names, x) -> dict:
    """Float outputs of the named submodules on ``x``."""
    got, hooks = {}, []
    for name in names:

        def hook(_m, _i, out, name=name):
            out = out[0] if isinstance(out, tuple) else out
            # clone: an in-place ReLU after an unfused conv (e.g. a parent whose BN was folded) would
            # otherwise rewrite the float tensor captured here, but not the dequantized copy.
            got[name] = (out.dequantize() if out.is_quantized else out).detach().float().clone()

        hooks.append(model.get_submodule(name).register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return got


def sqnr_db(ref: torch.Tensor, other: torch.Tensor) -> float:
    noise = (ref - other).pow(2).sum().item()
    signal = ref.pow(2).sum().item()
    if noise == 0:
        return math.inf
    return 10 * math.log10(max(signal, 1e-30) / noise)


def layer_error(reference: nn.Module, quantized: nn.Module, x: torch.Tensor) -> list[dict]:
    """Per torch.ao quantized layer. The FX import is here, not at the top: ``sqnr_db`` serves PT2E too."""
    from compressflow.quantize.graph import quantized_layers

    names = quantized_layers(quantized)
    ref, got = float_outputs(reference, names, x), float_outputs(quantized, names, x)
    return [{"layer": n, "mse": (ref[n] - got[n]).pow(2).mean().item(), "sqnr_db": sqnr_db(ref[n], got[n])} for n in names]
