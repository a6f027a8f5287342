"""Which layers and blocks INT8 can cover, and a split's input size: torch.fx and nn only, no torch.ao.

Shared by the torch.ao FX path (``graph``, ``mixed``) and its successor, PT2E (``pt2e``), so the PT2E
techniques keep working the day the pinned torch drops ``torch.ao.quantization``.
"""

from __future__ import annotations

from torch import fx, nn

from compressflow.errors import CompressflowError
from compressflow.unsupported import Unsupported, first_line

__all__ = ["STATIC_LAYERS", "quantizable_layers", "quantizable_units", "input_size_of"]

STATIC_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Linear)


FX = "torch.ao FX quantization"  # who asks, for the unsupported message: the FX techniques by default


def quantizable_layers(model: nn.Module, kinds=STATIC_LAYERS, technique: str = FX) -> list[str]:
    """Module names of the layers static INT8 can replace, in execution order (found by ``torch.fx.symbolic_trace``)."""
    try:
        graph = fx.symbolic_trace(model).graph
    except fx.proxy.TraceError as exc:
        raise _untraceable(model, exc, technique) from exc
    except (TypeError, AttributeError, RuntimeError) as exc:
        if "Proxy" not in str(exc) and "symbolically traced" not in str(exc):
            raise  # not a tracing limitation: a real bug fails loudly
        raise _untraceable(model, exc, technique) from exc
    mods = dict(model.named_modules())
    names = [n.target for n in graph.nodes if n.op == "call_module" and isinstance(mods.get(n.target), kinds)]
    if not names:
        kind_names = "/".join(k.__name__ for k in kinds)
        raise CompressflowError(f"the model has no quantizable layers ({kind_names})", "drop this quantization variant for this model")
    return names


def _untraceable(model: nn.Module, exc: BaseException, technique: str) -> Unsupported:
    if technique == FX:
        why = "FX graph mode needs a model that symbolic_trace can trace (no data-dependent control flow)"
        fix = "deploy this model's float variant and use the runtime INT8 rows (onnxruntime-int8 / openvino-int8) instead"
    else:
        why = f"{technique} finds its units with torch.fx.symbolic_trace, which needs no data-dependent control flow"
        fix = "use ptq_pt2e (whole-model INT8, no unit search), or the runtime INT8 rows (onnxruntime-int8 / openvino-int8)"
    return Unsupported(
        technique, f"{type(model).__name__} (torch.fx.symbolic_trace: {type(exc).__name__}: {first_line(exc, 160)})", why, fix
    )


def quantizable_units(model: nn.Module, technique: str = FX) -> list[str]:
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
    for name in quantizable_layers(model, technique=technique):
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


def input_size_of(split: dict) -> int:
    """The square input size of a data split ``[N, 3, S, S]``."""
    return int(split["x"].shape[-1])
