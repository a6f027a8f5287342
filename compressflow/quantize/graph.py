"""FX graph mode building blocks: which layers are quantizable, prepare, calibrate, convert."""

from __future__ import annotations

import contextlib
import copy

import torch
import torch.fx.config
from torch import fx, nn
from torch.ao.nn import quantized as nnq
from torch.ao.nn.quantized import dynamic as nnqd
from torch.ao.quantization import quantize_fx

from compressflow import data, device
from compressflow.errors import CompressflowError
from compressflow.quantize.qconfig import (
    qconfig_mapping,
    set_backend,
)
from compressflow.quantize.units import input_size_of, quantizable_layers

__all__ = [
    "example_input",
    "prepare",
    "build_static",
    "check_calib_size",
    "calibrate",
    "convert",
    "quantized_layers",
    "QUANT_MODULES",
]

QUANT_MODULES = (nnq.Conv1d, nnq.Conv2d, nnq.Linear, nnqd.Linear, nnqd.LSTM)


def example_input(input_size: int) -> torch.Tensor:
    return torch.randn(2, 3, input_size, input_size, generator=torch.Generator().manual_seed(0))


def prepare(model: nn.Module, spec: dict, input_size: int, fp32_layers=(), only_layers=None, qat: bool = False) -> fx.GraphModule:
    """Fuse Conv+BN(+ReLU) and insert observers (or fake-quant modules for QAT)."""
    set_backend(spec["backend"])
    quantizable_layers(model)
    mapping = qconfig_mapping(spec, fp32_layers, only_layers, qat)
    example = (example_input(input_size),)
    with _no_stack_traces():
        if qat:
            return quantize_fx.prepare_qat_fx(model.train(), mapping, example)
        return quantize_fx.prepare_fx(model.eval(), mapping, example)


@contextlib.contextmanager
def _no_stack_traces():
    """FX quantization tracing records each node's Python stack; symbolising it imports torch._dynamo, 1.2 s of
    every process that rebuilds an FX artifact. Nothing reads those traces: a model file keeps the state dict."""
    old = torch.fx.config.do_not_emit_stack_traces
    torch.fx.config.do_not_emit_stack_traces = True
    try:
        yield
    finally:
        torch.fx.config.do_not_emit_stack_traces = old


@torch.no_grad()
def build_static(parent: nn.Module, spec: dict, calib: dict, calib_size: int, fp32_layers=(), only_layers=None) -> nn.Module:
    """Prepare a copy, calibrate, convert: static INT8 with ``fp32_layers`` float (or only ``only_layers`` INT8)."""
    prepared = prepare(copy.deepcopy(parent), spec, input_size_of(calib), fp32_layers, only_layers)
    calibrate(prepared, calib, calib_size)
    return convert(prepared)


def builder(parent: nn.Module, spec: dict, calib: dict, calib_size: int):
    """``build(fp32_layers=(), only_layers=None) -> (model to evaluate, artifact)`` for :mod:`.mixed`, over :func:`build_static`."""

    def build(fp32_layers=(), only_layers=None):
        q = build_static(parent, spec, calib, calib_size, fp32_layers=fp32_layers, only_layers=only_layers)
        return q, q

    return build


def check_calib_size(split: dict, calib_size: int) -> int:
    n = len(split["y"])
    if calib_size < 1 or calib_size > n:
        raise CompressflowError(f"calib_size={calib_size} but the calib split has {n} images", f"use a calib_size between 1 and {n}")
    return int(calib_size)


@torch.no_grad()
def calibrate(prepared: nn.Module, split: dict, calib_size: int, batch_size: int = 64) -> int:
    calib_size = check_calib_size(split, calib_size)
    prepared.eval()
    dev = device.of(prepared)
    for x, _ in data.batches(split, batch_size, limit=calib_size):
        prepared(x.to(dev))
    return calib_size


def convert(prepared: nn.Module) -> fx.GraphModule:
    """INT8 model; the prepared model is left as it was (convert_fx rewrites its input)."""
    return quantize_fx.convert_fx(copy.deepcopy(prepared).eval())


def quantized_layers(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, QUANT_MODULES)]
