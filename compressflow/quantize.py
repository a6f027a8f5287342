"""INT8 quantization: dynamic, static PTQ (calibrate, then convert), QAT, sensitivity and mixed precision.

Static paths use ``torch.ao.quantization`` FX graph mode (prepare_fx / convert_fx / prepare_qat_fx).
It is deprecated in torch 2.14 but works on ResNet18 / MobileNetV2 here, fuses Conv+BN+ReLU itself,
and its converted modules run on the stock x86/fbgemm/qnnpack kernels; the torchao PT2E path failed
on ResNet18 on this machine (see docs NOTES). The warning is left visible on purpose.

Saved artifacts are state dicts plus a plain-data ``quantize`` transform; :func:`rebuild` replays the
same prepare/convert on an example input of the recorded size, so files load with ``weights_only=True``.
"""

from __future__ import annotations

import copy
import csv
import math
import sys

import torch
from torch import fx, nn
from torch.ao import quantization as tq
from torch.ao.nn import quantized as nnq
from torch.ao.nn.quantized import dynamic as nnqd
from torch.ao.quantization import quantize_fx

from compressflow import data, io, recipes, train
from compressflow import evaluate as ev
from compressflow.errors import CompressflowError

BACKENDS = ("x86", "fbgemm", "qnnpack")
OBSERVERS = ("minmax", "moving_average", "histogram", "percentile")
ACTIVATIONS = ("affine", "symmetric")
STATIC_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Linear)
DYNAMIC_LAYERS = {"Linear": nn.Linear, "LSTM": nn.LSTM}
QUANT_MODULES = (nnq.Conv1d, nnq.Conv2d, nnq.Linear, nnqd.Linear, nnqd.LSTM)


# ---------------------------------------------------------------- qconfigs (plain data -> torch objects)


class PercentileObserver(tq.HistogramObserver):
    """Histogram observer whose range is clipped to the given percentile of the observed values."""

    def __init__(self, percentile: float = 99.99, **kwargs):
        super().__init__(**kwargs)
        self.percentile = float(percentile)

    @torch.jit.export
    def calculate_qparams(self):
        total = self.histogram.sum()
        if total <= 0 or self.min_val == self.max_val:
            return super().calculate_qparams()
        cdf = torch.cumsum(self.histogram, 0) / total
        edges = torch.linspace(self.min_val.item(), self.max_val.item(), self.bins + 1)
        tail = (100.0 - self.percentile) / 100.0
        lo_bin = int(torch.searchsorted(cdf, torch.tensor(tail)).clamp(max=self.bins - 1))
        hi_bin = int(torch.searchsorted(cdf, torch.tensor(1.0 - tail)).clamp(max=self.bins - 1))
        lo, hi = min(edges[lo_bin].item(), 0.0), max(edges[hi_bin + 1].item(), 0.0)
        return self._calculate_qparams(torch.tensor(lo), torch.tensor(hi))


def qconfig_spec(
    backend: str = "x86", observer: str = "histogram", activation: str = "affine", per_channel: bool = True, percentile: float = 99.99
) -> dict:
    """The plain-data description of a static qconfig (what the artifact records)."""
    _check_choice("backend", backend, BACKENDS)
    _check_choice("observer", observer, OBSERVERS)
    _check_choice("activation", activation, ACTIVATIONS)
    if not 50.0 < float(percentile) <= 100.0:
        raise CompressflowError(f"percentile={percentile}", "use a percentile in (50, 100], e.g. 99.99")
    return {
        "backend": backend,
        "observer": observer,
        "activation": activation,
        "per_channel": bool(per_channel),
        "percentile": float(percentile),
        # fbgemm/x86 kernels may overflow 16-bit accumulators without VNNI, so their default qconfigs use 7-bit
        # activations; torch cannot reduce the range of symmetric quint8, which then uses all 8 bits.
        "reduce_range": backend in ("x86", "fbgemm") and activation == "affine",
        "activation_dtype": "quint8",
        "weight_dtype": "qint8",
    }


def _check_choice(what, value, allowed):
    if value not in allowed:
        raise CompressflowError(f"unknown {what} '{value}'", f"use one of: {', '.join(allowed)}")


def set_backend(backend: str) -> None:
    if backend not in torch.backends.quantized.supported_engines:
        raise CompressflowError(
            f"quantized backend '{backend}' is not available in this torch build",
            f"use one of: {', '.join(e for e in torch.backends.quantized.supported_engines if e != 'none')}",
        )
    torch.backends.quantized.engine = backend


def make_qconfig(spec: dict, qat: bool = False) -> tq.QConfig:
    act_qscheme = torch.per_tensor_symmetric if spec["activation"] == "symmetric" else torch.per_tensor_affine
    rr = spec["reduce_range"]
    if qat:
        act = tq.FusedMovingAvgObsFakeQuantize.with_args(
            observer=tq.MovingAverageMinMaxObserver, quant_min=0, quant_max=255, dtype=torch.quint8, qscheme=act_qscheme, reduce_range=rr
        )
        weight = tq.default_fused_per_channel_wt_fake_quant if spec["per_channel"] else tq.default_fused_wt_fake_quant
        return tq.QConfig(activation=act, weight=weight)
    kwargs = {"dtype": torch.quint8, "qscheme": act_qscheme, "reduce_range": rr}
    act = {
        "minmax": tq.MinMaxObserver.with_args(**kwargs),
        "moving_average": tq.MovingAverageMinMaxObserver.with_args(**kwargs),
        "histogram": tq.HistogramObserver.with_args(**kwargs),
        "percentile": PercentileObserver.with_args(percentile=spec["percentile"], **kwargs),
    }[spec["observer"]]
    if spec["per_channel"]:
        weight = tq.PerChannelMinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_channel_symmetric)
    else:
        weight = tq.MinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric)
    return tq.QConfig(activation=act, weight=weight)


def qconfig_mapping(spec: dict, fp32_layers=(), only_layers=None, qat: bool = False) -> tq.QConfigMapping:
    """Global qconfig, minus ``fp32_layers``; with ``only_layers`` nothing else is quantized."""
    qc = make_qconfig(spec, qat)
    mapping = tq.QConfigMapping()
    if only_layers is None:
        mapping.set_global(qc)
        for name in fp32_layers:
            mapping.set_module_name(name, None)
    else:
        mapping.set_global(None)
        for name in only_layers:
            mapping.set_module_name(name, qc)
    return mapping


# ---------------------------------------------------------------- building blocks


def example_input(input_size: int) -> torch.Tensor:
    return torch.randn(2, 3, input_size, input_size, generator=torch.Generator().manual_seed(0))


def quantizable_layers(model: nn.Module, kinds=STATIC_LAYERS) -> list[str]:
    """Module names of the layers static INT8 can replace, in execution order."""
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception as exc:  # noqa: BLE001 - tracing errors come in many types
        raise CompressflowError(
            f"the model cannot be traced by torch.fx ({type(exc).__name__})", "quantize a traceable architecture"
        ) from exc
    mods = dict(model.named_modules())
    names = [n.target for n in graph.nodes if n.op == "call_module" and isinstance(mods.get(n.target), kinds)]
    if not names:
        kind_names = "/".join(k.__name__ for k in kinds)
        raise CompressflowError(f"the model has no quantizable layers ({kind_names})", "drop this quantization variant for this model")
    return names


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
    for x, _ in data.batches(split, batch_size, limit=calib_size):
        prepared(x)
    return calib_size


def convert(prepared: nn.Module) -> fx.GraphModule:
    """INT8 model; the prepared model is left as it was (convert_fx rewrites its input)."""
    return quantize_fx.convert_fx(copy.deepcopy(prepared).eval())


def observer_table(prepared: fx.GraphModule) -> list[dict]:
    """Per observed tensor: which op it follows, observed min/max and the resulting scale/zero point."""
    mods = dict(prepared.named_modules())
    rows = []
    for node in prepared.graph.nodes:
        obs = mods.get(node.target) if node.op == "call_module" else None
        if not isinstance(obs, tq.ObserverBase):
            continue
        src = node.args[0]
        row = {
            "observer": node.target,
            "observes": src.target if isinstance(src, fx.Node) and src.op == "call_module" else str(src),
            "kind": type(obs).__name__,
        }
        if hasattr(obs, "min_val") and obs.min_val.numel() == 1 and torch.isfinite(obs.min_val):
            scale, zp = obs.calculate_qparams()
            scale, zp = float(scale.reshape(-1)[0]), int(zp.reshape(-1)[0])
            row.update(
                min=obs.min_val.item(),
                max=obs.max_val.item(),
                scale=scale,
                zero_point=zp,
                range_min=(obs.quant_min - zp) * scale,
                range_max=(obs.quant_max - zp) * scale,
            )
        rows.append(row)
    return rows


def quantized_layers(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, QUANT_MODULES)]


def _outputs(model: nn.Module, names, x) -> dict:
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


@torch.no_grad()
def bias_correct(quantized: nn.Module, reference: nn.Module, split: dict, calib_size: int, batch_size: int = 64) -> list[dict]:
    """Empirical bias correction: per output channel, subtract the mean output error vs float from the bias.

    Layers are corrected in execution order, so each correction sees the already-corrected upstream.
    ``reference`` is the prepared (fused, float) model: same module names, float arithmetic.
    """
    calib_size = check_calib_size(split, calib_size)
    names = [n for n, m in quantized.named_modules() if isinstance(m, (nnq.Conv2d, nnq.Conv1d, nnq.Linear)) and m.bias() is not None]
    done = []
    for name in names:
        qmod = quantized.get_submodule(name)
        total, count = None, 0
        for x, _ in data.batches(split, batch_size, limit=calib_size):
            q, f = _outputs(quantized, [name], x)[name], _outputs(reference, [name], x)[name]
            dims = [d for d in range(q.dim()) if d != 1]
            err = (q - f).sum(dim=dims)
            total = err if total is None else total + err
            count += q.numel() // q.shape[1]
        shift = total / count
        qmod.set_weight_bias(qmod.weight(), qmod.bias() - shift)
        done.append({"layer": name, "mean_abs_shift": shift.abs().mean().item()})
    return done


def layer_error(reference: nn.Module, quantized: nn.Module, x: torch.Tensor) -> list[dict]:
    names = quantized_layers(quantized)
    ref, got = _outputs(reference, names, x), _outputs(quantized, names, x)
    return [{"layer": n, "mse": (ref[n] - got[n]).pow(2).mean().item(), "sqnr_db": sqnr_db(ref[n], got[n])} for n in names]


# ---------------------------------------------------------------- dynamic INT8 (weights int8, activations quantized on the fly)


class _PlainPackedParameter(nnqd.modules.rnn.PackedParameter):
    """Holds an LSTM cell's packed weights but saves nothing (the LSTM saves them as qint8 tensors)."""

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        pass

    def _load_from_state_dict(self, *args, **kwargs):
        pass


class PortableDynamicLSTM(nnqd.LSTM):
    """Dynamic INT8 LSTM whose state dict holds qint8 tensors instead of TorchScript objects.

    The stock module saves ``torch.classes`` cell params, which ``weights_only=True`` refuses.
    """

    @classmethod
    def adopt(cls, module: nnqd.LSTM) -> PortableDynamicLSTM:
        module.__class__ = cls
        for child in module._all_weight_values:
            child.__class__ = _PlainPackedParameter
        return module

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        wb = self._weight_bias()
        for group in ("weight", "bias"):
            for key, value in wb[group].items():
                destination[prefix + key] = value

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        own = self._weight_bias()
        keys = [k for g in ("weight", "bias") for k in own[g]]
        missing_keys.extend(prefix + k for k in keys if prefix + k not in state_dict)
        if all(prefix + k in state_dict for k in keys):
            self.set_weight_bias({k: state_dict[prefix + k] for k in keys})
            for child in self._all_weight_values:
                child.__class__ = _PlainPackedParameter


def quantize_dynamic(model: nn.Module, dtype: str = "qint8", layer_types=("Linear", "LSTM")) -> tuple[nn.Module, list[str]]:
    if dtype != "qint8":
        raise CompressflowError(f"dynamic dtype '{dtype}'", "use dtype: qint8")
    kinds = tuple(DYNAMIC_LAYERS[t] for t in layer_types)
    names = [n for n, m in model.named_modules() if isinstance(m, kinds)]
    if not names:
        raise CompressflowError(
            f"the model has no {'/'.join(layer_types)} layers for dynamic quantization", "drop this dynamic variant for this model"
        )
    q = tq.quantize_dynamic(model.eval(), {DYNAMIC_LAYERS[t] for t in layer_types}, dtype=torch.qint8)
    for m in q.modules():
        if isinstance(m, nnqd.LSTM):
            PortableDynamicLSTM.adopt(m)
    return q, names


# ---------------------------------------------------------------- rebuild (replay a recorded transform before loading weights)


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


def _parent_input_size(split: dict) -> int:
    return int(split["x"].shape[-1])


# ---------------------------------------------------------------- mixed precision and sensitivity


@torch.no_grad()
def build_static(parent: nn.Module, spec: dict, calib: dict, calib_size: int, fp32_layers=(), only_layers=None) -> nn.Module:
    prepared = prepare(copy.deepcopy(parent), spec, _parent_input_size(calib), fp32_layers, only_layers)
    calibrate(prepared, calib, calib_size)
    return convert(prepared)


def sensitivity(parent: nn.Module, spec: dict, calib: dict, val: dict, calib_size: int) -> list[dict]:
    """Per unit (:func:`quantizable_units`): val top-1 with only that unit INT8, its change vs float, and the logits' SQNR."""
    layers = quantizable_units(parent)
    ref_logits = ev.predict(parent, val)
    base = ev.topk(ref_logits, val["y"], 1)
    rows = []
    for name in layers:
        q = build_static(parent, spec, calib, calib_size, only_layers=[name])
        logits = ev.predict(q, val)
        top1 = ev.topk(logits, val["y"], 1)
        rows.append({"layer": name, "top1": top1, "top1_delta": top1 - base, "sqnr_db": sqnr_db(ref_logits, logits), "fp32_top1": base})
        print(f"sensitivity {name}: top1 {top1:.4f} (delta {top1 - base:+.4f}), SQNR {rows[-1]['sqnr_db']:.1f} dB", file=sys.stderr)
    return rows


def rank_layers(rows: list[dict], layers: list[str]) -> list[str]:
    """Most sensitive first: largest top-1 loss, then lowest logits SQNR; units without a row come last.

    Top-1 leads because the budget is a top-1 budget: on ResNet18/digits the units with the lowest
    SQNR (conv1, fc) flipped no validation image, while five blocks with higher SQNR flipped one each.
    """
    known = {r["layer"]: r for r in rows}
    ranked = sorted((n for n in layers if n in known), key=lambda n: (float(known[n]["top1_delta"]), float(known[n]["sqnr_db"])))
    return ranked + [n for n in layers if n not in known]


def mixed_precision(
    parent: nn.Module,
    spec: dict,
    calib: dict,
    val: dict,
    calib_size: int,
    sens_rows: list[dict],
    max_accuracy_drop: float,
    keep_first_last: bool,
) -> tuple[nn.Module, dict]:
    """Greedy: keep the most sensitive units FP32 until the val top-1 drop is within budget, then
    try to give each of them back to INT8 (last added first) while the budget still holds.

    Units are blocks (:func:`quantizable_units`). At least one unit stays INT8; if even that misses the
    budget, the best model reached is returned with ``budget_met: False``.
    """
    layers = quantizable_units(parent)
    base = ev.topk(ev.predict(parent, val), val["y"], 1)
    forced = [layers[0], layers[-1]] if keep_first_last and len(layers) > 2 else []
    queue = [n for n in rank_layers(sens_rows, layers) if n not in forced]
    trials, best = [], None

    def within(t):
        return t["val_top1_drop"] <= max_accuracy_drop

    def score(t):  # within budget: fewest FP32 units; otherwise: smallest drop, then fewest units
        return (0, len(t["fp32_layers"]), 0.0) if within(t) else (1, t["val_top1_drop"], len(t["fp32_layers"]))

    def trial_of(fp32, phase):
        nonlocal best
        q = build_static(parent, spec, calib, calib_size, fp32_layers=fp32)
        top1 = ev.topk(ev.predict(q, val), val["y"], 1)
        trial = {"phase": phase, "fp32_layers": list(fp32), "val_top1": top1, "val_top1_drop": base - top1}
        trials.append(trial)
        print(f"mixed ({phase}): {len(fp32)} FP32 units -> val top1 {top1:.4f} (drop {base - top1:+.4f})", file=sys.stderr)
        if best is None or score(trial) < score(best[1]):
            best = (q, trial)
        return within(trial)

    # Forward: add units to FP32, most sensitive first, until the budget holds.
    fp32 = list(forced)
    while not trial_of(fp32, "add") and len(queue) > 1:
        fp32.append(queue.pop(0))
    # Backward: give each FP32 unit (last added first) back to INT8 if the budget still holds without it.
    if within(best[1]):
        fp32 = list(best[1]["fp32_layers"])
        for unit in [n for n in reversed(fp32) if n not in forced][1:]:
            candidate = [n for n in fp32 if n != unit]
            if trial_of(candidate, "remove"):
                fp32 = candidate
    q, trial = best
    met = within(trial)
    info = {
        "budget_met": met,
        "max_accuracy_drop": max_accuracy_drop,
        "fp32_val_top1": base,
        **trial,
        "int8_layers": [n for n in layers if n not in trial["fp32_layers"]],
        "granularity": "unit: outermost block holding a Conv/Linear, else the layer",
        "float_conv_linear": [n for n, m in q.named_modules() if isinstance(m, STATIC_LAYERS)],
        "trials": trials,
    }
    if not met:
        info["note"] = (
            f"budget not met: best val top-1 drop {trial['val_top1_drop']:.4f} > max_accuracy_drop {max_accuracy_drop:g} "
            f"with {len(trial['fp32_layers'])} of {len(layers)} units FP32; saved that best model"
        )
        print(info["note"], file=sys.stderr)
    return q, info


def read_sensitivity(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_csv(rows: list[dict], path) -> None:
    with io.atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot_sensitivity(rows: list[dict], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["layer"] for r in rows]
    fig, ax1 = plt.subplots(figsize=(max(6, 0.35 * len(names)), 4))
    ax1.bar(range(len(names)), [100 * float(r["top1_delta"]) for r in rows], color="tab:red")
    ax1.set_ylabel("val top-1 change (pt), only this layer INT8")
    ax1.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax2 = ax1.twinx()
    ax2.plot(range(len(names)), [min(float(r["sqnr_db"]), 99.0) for r in rows], "o-", color="tab:blue")
    ax2.set_ylabel("logit SQNR (dB)")
    ax1.set_title("Per-layer INT8 sensitivity")
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------- workflow steps (one per rule)


def _load(path):
    model, recipe = io.load_model(path)
    return model.eval(), recipe


def step_quantize_dynamic(inputs, outputs, params, threads):
    torch.set_num_threads(threads)
    model, recipe = _load(inputs["model"])
    q, names = quantize_dynamic(model, params["dtype"])
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
    io.save_model(q, recipes.with_transform(recipe, t), outputs["model"])


def step_calibrate_ptq(inputs, outputs, params, threads):
    torch.set_num_threads(threads)
    model, recipe = _load(inputs["model"])
    calib = data.load_split(inputs["calib"])
    spec = qconfig_spec(params["backend"], params["observer"], params["activation"], params["per_channel"], params.get("percentile", 99.99))
    size = _parent_input_size(calib)
    check_calib_size(calib, params["calib_size"])
    prepared = prepare(model, spec, size)
    n = calibrate(prepared, calib, params["calib_size"])
    table = observer_table(prepared)
    t = transform("ptq", spec, size, stage="prepared", calib_size=n)
    io.save_model(prepared, recipes.with_transform(recipe, t), outputs["calibrated"])
    io.write_json({"qconfig": spec, "calib_images": n, "input_size": size, "observers": table}, outputs["calibration"])


def step_convert_ptq(inputs, outputs, params, threads):
    torch.set_num_threads(threads)
    prepared, recipe = _load(inputs["calibrated"])
    t = dict(recipe["transforms"][-1], stage="converted", bias_correction=bool(params["bias_correction"]))
    set_backend(t["backend"])
    q = convert(prepared)
    if params["bias_correction"]:
        calib = data.load_split(inputs["calib"])
        corrections = bias_correct(q, prepared, calib, t["calib_size"])
        print(f"bias correction on {len(corrections)} layers", file=sys.stderr)
    base = dict(recipe, transforms=recipe["transforms"][:-1])
    io.save_model(q, recipes.with_transform(base, t), outputs["model"])


def fine_tune_qat(
    prepared: nn.Module,
    split: dict,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    freeze_observers_epoch: int | None,
    freeze_bn_epoch: int | None,
    warmup_images: int = 256,
) -> list[dict]:
    """Fake-quant fine-tuning; observers first see ``warmup_images`` training images so freezing at epoch 0 is meaningful."""
    calibrate(prepared, split, min(warmup_images, len(split["y"])), batch_size)

    def on_epoch_start(epoch, m):
        if freeze_observers_epoch is not None and epoch >= freeze_observers_epoch:
            m.apply(tq.disable_observer)
        if freeze_bn_epoch is not None and epoch >= freeze_bn_epoch:
            m.apply(torch.ao.nn.intrinsic.qat.freeze_bn_stats)

    return train.fit(prepared, split, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, desc="qat", on_epoch_start=on_epoch_start)


def step_train_qat(inputs, outputs, params, threads):
    train.seed_everything(params["seed"], threads)
    model, recipe = _load(inputs["model"])
    split = data.load_split(inputs["train"])
    spec = qconfig_spec(params["backend"], "moving_average", "affine", params["per_channel"])
    size = _parent_input_size(split)
    prepared = prepare(model, spec, size, qat=True)
    freeze_obs, freeze_bn = params["freeze_observers_epoch"], params["freeze_bn_epoch"]
    history = fine_tune_qat(
        prepared,
        split,
        epochs=params["epochs"],
        lr=params["lr"],
        batch_size=params["batch_size"],
        seed=params["seed"],
        freeze_observers_epoch=freeze_obs,
        freeze_bn_epoch=freeze_bn,
    )
    q = convert(prepared.eval())
    t = transform("qat", spec, size, epochs=params["epochs"], freeze_observers_epoch=freeze_obs, freeze_bn_epoch=freeze_bn)
    io.save_model(q, recipes.with_transform(recipe, t), outputs["model"])
    io.write_json({"history": history}, outputs["history"])


def step_analyze_sensitivity(inputs, outputs, params, threads):
    torch.set_num_threads(threads)
    model, _ = _load(inputs["model"])
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
    rows = sensitivity(model, spec, calib, val, min(int(s["calib_size"]), len(calib["y"])))
    write_csv(rows, outputs["csv"])
    plot_sensitivity(rows, outputs["plot"])


def step_quantize_mixed(inputs, outputs, params, threads):
    torch.set_num_threads(threads)
    model, recipe = _load(inputs["model"])
    calib, val = data.load_split(inputs["calib"]), data.load_split(inputs["val"])
    spec = qconfig_spec(params["backend"], params["observer"], "affine", params["per_channel"])
    calib_size = check_calib_size(calib, params["calib_size"] if params.get("calib_size") else len(calib["y"]))
    q, info = mixed_precision(
        model, spec, calib, val, calib_size, read_sensitivity(inputs["sensitivity"]), params["max_accuracy_drop"], params["keep_first_last"]
    )
    t = transform(
        "mixed", spec, _parent_input_size(calib), fp32_layers=info["fp32_layers"], budget_met=info["budget_met"], calib_size=calib_size
    )
    io.save_model(q, recipes.with_transform(recipe, t), outputs["model"])
    io.write_json(info, outputs["report"])


def step_layer_error(inputs, outputs, params, threads):
    torch.set_num_threads(threads)
    q, recipe = _load(inputs["model"])
    parent, _ = _load(inputs["parent"])
    calib = data.load_split(inputs["calib"])
    t = recipe["transforms"][-1]
    if t["mode"] == "dynamic":
        reference = parent
    else:
        # Same fusion as the quantized model (Conv+BN+ReLU in one module, same name), float arithmetic.
        reference = prepare(parent, t["qconfig"], t["input_size"], fp32_layers=t.get("fp32_layers", ())).eval()
        set_backend(t["backend"])
    x, _ = next(data.batches(calib, params["batch_size"]))
    rows = layer_error(reference, q, x)
    write_csv(rows, outputs["csv"])
