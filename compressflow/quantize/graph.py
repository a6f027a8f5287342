"""FX graph mode building blocks: which layers are quantizable, prepare, calibrate, convert."""

from __future__ import annotations

import copy

import torch
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
from compressflow.unsupported import Unsupported, first_line

__all__ = [
    "example_input",
    "quantizable_layers",
    "quantizable_units",
    "prepare",
    "check_calib_size",
    "calibrate",
    "convert",
    "quantized_layers",
    "input_size_of",
    "STATIC_LAYERS",
    "QUANT_MODULES",
]

STATIC_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Linear)
QUANT_MODULES = (nnq.Conv1d, nnq.Conv2d, nnq.Linear, nnqd.Linear, nnqd.LSTM)


def example_input(input_size: int) -> torch.Tensor:
    return torch.randn(2, 3, input_size, input_size, generator=torch.Generator().manual_seed(0))


def quantizable_layers(model: nn.Module, kinds=STATIC_LAYERS) -> list[str]:
    """Module names of the layers static INT8 can replace, in execution order."""
    try:
        graph = fx.symbolic_trace(model).graph
    except fx.proxy.TraceError as exc:
        raise _untraceable(model, exc) from exc
    except (TypeError, AttributeError, RuntimeError) as exc:
        if "Proxy" not in str(exc) and "symbolically traced" not in str(exc):
            raise  # not a tracing limitation: a real bug fails loudly
        raise _untraceable(model, exc) from exc
    mods = dict(model.named_modules())
    names = [n.target for n in graph.nodes if n.op == "call_module" and isinstance(mods.get(n.target), kinds)]
    if not names:
        kind_names = "/".join(k.__name__ for k in kinds)
        raise CompressflowError(f"the model has no quantizable layers ({kind_names})", "drop this quantization variant for this model")
    return names


def _untraceable(model: nn.Module, exc: BaseException) -> Unsupported:
    return Unsupported(
        "torch.ao FX quantization",
        f"{type(model).__name__} (torch.fx.symbolic_trace: {type(exc).__name__}: {first_line(exc, 160)})",
        "FX graph mode needs a model that symbolic_trace can trace (no data-dependent control flow)",
        "deploy this model's float variant and use the runtime INT8 rows (onnxruntime-int8 / openvino-int8) instead",
    )


def quantizable_units(model: nn.Module) -> list[str]:
    """The units that mixed precision keeps FP32 or INT8 as a whole, in execution order.

    A unit is the outermost block (a submodule that is not a plain ``Sequential``/``ModuleList``
    container, e.g. a ResNet ``BasicBlock`` or a MobileNetV2 ``InvertedResidual``) holding a quantizable
    layer, or the layer itself when no block holds it. A qconfig set on a block's name covers every op
    traced inside it, the residual ``add`` included, so keeping a block FP32 removes all of its
    quantization error; keeping only its convolutions FP32 left the INT8 adds, and with every Conv and
    Linear FP32 ResNet18 still lost two validation images.
    """
    mods = dict(model.named_modules())
    units = []
    for name in quantizable_layers(model):
        parts = name.split(".")
        unit = name
        for depth in range(1, len(parts)):
            candidate = ".".join(parts[:depth])
            if not isinstance(mods[candidate], (nn.Sequential, nn.ModuleList)):
                unit = candidate
                break
        if unit not in units:
            units.append(unit)
    return units


def prepare(model: nn.Module, spec: dict, input_size: int, fp32_layers=(), only_layers=None, qat: bool = False) -> fx.GraphModule:
    """Fuse Conv+BN(+ReLU) and insert observers (or fake-quant modules for QAT)."""
    set_backend(spec["backend"])
    quantizable_layers(model)
    mapping = qconfig_mapping(spec, fp32_layers, only_layers, qat)
    example = (example_input(input_size),)
    if qat:
        return quantize_fx.prepare_qat_fx(model.train(), mapping, example)
    return quantize_fx.prepare_fx(model.eval(), mapping, example)


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


def input_size_of(split: dict) -> int:
    """The square input size of a data split ``[N, 3, S, S]``."""
    return int(split["x"].shape[-1])
