"""PT2E INT8 (torchao): ``torch.export`` -> ``prepare_pt2e`` with ``X86InductorQuantizer`` -> calibrate -> ``convert_pt2e``.

The successor of the torch.ao FX path (``compressflow.quantize.graph``), which PyTorch deprecated in
2025. The converted graph holds reference Q/DQ ops: it is only fast after ``torch.compile`` with
inductor and ``freezing=True`` (``compressflow.runtimes.compile``), which fuses them into INT8 kernels.

Artifacts stay recipe + state dict: the state dict is the *prepared, calibrated* graph's (weights and
observer min/max), the recipe records the export and quantizer settings, and loading replays
export -> prepare, loads the state, and converts (``finish``). Converting is deterministic given the
observers, so no pickled code and no graph constants are stored.
"""

from __future__ import annotations

import copy
import io
import warnings

import torch
from torch import nn

from compressflow import data
from compressflow.errors import CompressflowError

__all__ = [
    "API",
    "export",
    "untie_repeated_calls",
    "untied_calls",
    "fine_tune_qat",
    "quantizer",
    "prepare",
    "calibrate",
    "build",
    "builder",
    "prepare_exported",
    "convert",
    "count_qdq",
    "transform",
    "rebuild",
    "finish",
    "program_bytes",
]

API = "pt2e"  # the report's name for the quantization API that built an artifact
EXPORT_BATCH = 2  # example batch for torch.export; the batch dimension stays dynamic
# Height and width are static: export specializes a graph on feature maps of size 1×1 (ResNet18 exported at
# 224² refuses 16² and 32² inputs, "Guard failed: 1 + (-1 + x.size()[3]) // 32 != 1"), so one graph cannot
# serve the data's size and the latency size. ``artifacts.load_model_at_size`` rebuilds the graph for another size from the
# same calibrated state (the state dict's keys do not depend on the size).

_QDQ_OPS = ("quantize_per_tensor", "quantize_per_channel", "dequantize_per_tensor", "dequantize_per_channel")


def example_input(input_size: int, batch: int = EXPORT_BATCH) -> torch.Tensor:
    return torch.randn(batch, 3, input_size, input_size, generator=torch.Generator().manual_seed(0))


def dynamic_shapes():
    """The batch is dynamic; height and width are not (see ``EXPORT_BATCH``)."""
    return ({0: torch.export.Dim("batch", min=1, max=4096)},)


def untie_repeated_calls(gm: torch.fx.GraphModule) -> list[str]:
    """Give each call of a module that runs more than once its own source name. Returns the renamed calls.

    The quantizer groups nodes into partitions by the module they came from (``nn_module_stack``), so a
    module called twice (torchvision's ``BasicBlock`` calls one ``nn.ReLU`` after conv1 and after the
    residual add) makes one partition with two outputs: ``ValueError: Input partition has more than one
    output node``. ``torch.export`` already marks the second call's stack key with ``@1``; the module
    path gets the same suffix, so each call is its own partition. Works for any architecture, whatever
    module is reused.
    """
    renamed = []
    for node in gm.graph.nodes:
        stack = node.meta.get("nn_module_stack")
        if not stack:
            continue
        key, (fqn, cls) = list(stack.items())[-1]
        if "@" in key and not fqn.endswith("@" + key.rsplit("@", 1)[1]):
            call = f"{fqn}@{key.rsplit('@', 1)[1]}"
            node.meta["nn_module_stack"] = {**stack, key: (call, cls)}
            renamed.append(call)
    return sorted(set(renamed))


def untied_calls(gm: torch.fx.GraphModule) -> list[str]:
    """The module calls :func:`untie_repeated_calls` renamed in this graph (``layer1.0.relu@1``, ...)."""
    calls = set()
    for node in gm.graph.nodes:
        stack = node.meta.get("nn_module_stack")
        if stack and "@" in list(stack.values())[-1][0]:
            calls.add(list(stack.values())[-1][0])
    return sorted(calls)


def export(model: nn.Module, input_size: int) -> torch.fx.GraphModule:
    """The model as an ATen graph (dynamic batch), with repeated module calls untied."""
    model = copy.deepcopy(model).eval()
    try:
        gm = torch.export.export(model, (example_input(input_size),), dynamic_shapes=dynamic_shapes()).module()
    except Exception as exc:  # noqa: BLE001 - export errors come in many types
        raise CompressflowError(
            f"torch.export failed on the model ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})",
            "use an exportable architecture for ptq_pt2e/qat_pt2e, or the FX technique ptq/qat",
        ) from exc
    untie_repeated_calls(gm)
    return gm


def quantizer(*, qat: bool = False, reduce_range: bool = False, fp32_layers=(), only_layers=None):
    """X86InductorQuantizer: static INT8, per-channel weights, per-tensor activations.

    ``fp32_layers`` (module names, blocks included) stay float; with ``only_layers`` only those modules
    are INT8 (per-unit sensitivity). Names match the module path of every op traced inside the module.
    """
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    config = xiq.get_default_x86_inductor_quantization_config(is_qat=qat, reduce_range=reduce_range)
    q = xiq.X86InductorQuantizer()
    if only_layers is None:
        q.set_global(config)
        for name in fp32_layers:
            q.set_module_name_qconfig(name, None)
    else:
        for name in only_layers:
            q.set_module_name_qconfig(name, config)
    return q


def prepare(model: nn.Module, input_size: int, *, qat: bool = False, reduce_range: bool = False, fp32_layers=(), only_layers=None):
    """Export, then insert observers (PTQ) or fake quantizers (QAT)."""
    return prepare_exported(export(model, input_size), qat=qat, reduce_range=reduce_range, fp32_layers=fp32_layers, only_layers=only_layers)


def prepare_exported(gm: torch.fx.GraphModule, *, qat: bool = False, reduce_range: bool = False, fp32_layers=(), only_layers=None):
    """Insert observers (PTQ) or fake quantizers (QAT) into an :func:`export`-ed graph (which this rewrites)."""
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e, prepare_qat_pt2e

    q = quantizer(qat=qat, reduce_range=reduce_range, fp32_layers=fp32_layers, only_layers=only_layers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            return (prepare_qat_pt2e if qat else prepare_pt2e)(gm, q)
        except ValueError as exc:
            raise CompressflowError(
                f"the PT2E quantizer cannot annotate this model ({exc})", "report the architecture; use the FX technique ptq/qat meanwhile"
            ) from exc


def to_eval(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Switch dropout/batch-norm ops the PT2E way, and let ``.eval()``/``.train()`` work on the graph
    (exported graphs refuse them otherwise, and the evaluate/measure code calls them on every model)."""
    from torchao.quantization.pt2e import allow_exported_model_train_eval, move_exported_model_to_eval

    gm = move_exported_model_to_eval(gm)
    allow_exported_model_train_eval(gm)
    return gm


def to_train(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    from torchao.quantization.pt2e import move_exported_model_to_train

    return move_exported_model_to_train(gm)


@torch.no_grad()
def calibrate(prepared: torch.fx.GraphModule, split: dict, calib_size: int, batch_size: int = 64) -> int:
    n = len(split["y"])
    if calib_size < 1 or calib_size > n:
        raise CompressflowError(f"calib_size={calib_size} but the calib split has {n} images", f"use a calib_size between 1 and {n}")
    to_eval(prepared)
    for x, _ in data.batches(split, batch_size, limit=calib_size):
        prepared(x)
    return int(calib_size)


def build(
    parent: nn.Module, calib: dict, calib_size: int, input_size: int, *, reduce_range: bool = False, fp32_layers=(), only_layers=None
):
    """Static PT2E INT8 of ``parent`` (left as it was): ``(converted graph, calibrated prepared graph)``.
    The second is what an artifact saves (``recipes``: recipe + the prepared graph's state)."""
    prepared = prepare(parent, input_size, reduce_range=reduce_range, fp32_layers=fp32_layers, only_layers=only_layers)
    calibrate(prepared, calib, calib_size)
    return convert(prepared), prepared


def builder(parent: nn.Module, calib: dict, calib_size: int, input_size: int, *, reduce_range: bool = False):
    """:func:`build` as ``build(fp32_layers=(), only_layers=None)`` for :mod:`.mixed`: ``parent`` is exported
    once and each call prepares a copy of that graph (an export is seconds; a search builds 10-20 times)."""
    exported = export(parent, input_size)

    def build(fp32_layers=(), only_layers=None):
        prepared = prepare_exported(copy.deepcopy(exported), reduce_range=reduce_range, fp32_layers=fp32_layers, only_layers=only_layers)
        calibrate(prepared, calib, calib_size)
        return convert(prepared), prepared

    return build


def count_qdq(gm: torch.fx.GraphModule) -> int:
    """Quantize/dequantize nodes in a converted graph."""
    return sum(1 for n in gm.graph.nodes if n.op == "call_function" and any(op in str(n.target) for op in _QDQ_OPS))


def convert(prepared: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """INT8 reference graph. No Q/DQ node inserted (a known silent failure of this API) is an error."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    q = to_eval(convert_pt2e(copy.deepcopy(prepared)))
    n = count_qdq(q)
    if n == 0:
        raise CompressflowError(
            "convert_pt2e inserted no quantize/dequantize node: the artifact would be FP32 under an INT8 name",
            "check that the model has Conv2d/Linear layers the X86InductorQuantizer annotates, and that fp32_layers does not name them all",
        )
    return q


def transform(input_size: int, *, qat: bool, reduce_range: bool, fp32_layers=(), **extra) -> dict:
    return {
        "kind": "pt2e",
        "api": API,
        "mode": "qat" if qat else "ptq",
        "quantizer": "X86InductorQuantizer",
        "reduce_range": bool(reduce_range),
        "fp32_layers": list(fp32_layers),
        "input_size": int(input_size),
        **extra,
    }


def rebuild(model: nn.Module, t: dict) -> torch.fx.GraphModule:
    """The prepared graph the saved state dict fits (``recipes.REBUILDERS``); ``finish`` converts it after loading."""
    prepared = prepare(model, t["input_size"], qat=t["mode"] == "qat", reduce_range=t["reduce_range"], fp32_layers=t["fp32_layers"])
    with torch.no_grad():
        prepared(example_input(t["input_size"]))  # materialise observers so their buffers take the loaded values
    return prepared


def finish(prepared: torch.fx.GraphModule, t: dict) -> torch.fx.GraphModule:
    """After the observers' state is loaded: the converted INT8 graph (``recipes.FINISHERS``)."""
    return convert(prepared)


def strip_meta(gm: torch.fx.GraphModule) -> None:
    """Drop node metadata that differs between identical runs (``from_node`` holds Python object ids) or machines (stack traces)."""
    for node in gm.graph.nodes:
        for key in ("from_node", "stack_trace"):
            node.meta.pop(key, None)


def program_bytes(gm: torch.fx.GraphModule, input_size: int) -> bytes:
    """``torch.export.save`` of the converted graph: reloads with ``torch.export.load``, no compressflow needed.

    Same inputs give the same bytes: ``from_node`` metadata (which holds ``id()`` of Python graphs) and
    stack traces are stripped first.
    """
    strip_meta(gm)
    ep = torch.export.export(gm, (example_input(input_size),), dynamic_shapes=dynamic_shapes())
    strip_meta(ep.graph_module)
    buf = io.BytesIO()
    torch.export.save(ep, buf)
    return buf.getvalue()


def fine_tune_qat(
    prepared: torch.fx.GraphModule, split: dict, *, epochs: int, lr: float, batch_size: int, seed: int, warmup_images: int = 256
):
    """Fake-quant fine-tuning of a ``prepare_qat_pt2e`` graph; observers first see ``warmup_images`` training images."""
    from torchao.quantization.pt2e import allow_exported_model_train_eval

    from compressflow import train

    allow_exported_model_train_eval(prepared)  # train.fit switches modes with .train()/.eval()
    calibrate(prepared, split, min(warmup_images, len(split["y"])), batch_size)
    to_train(prepared)
    history = train.fit(prepared, split, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, desc="qat_pt2e")
    to_eval(prepared)
    return history
