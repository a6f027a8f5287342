"""Per-unit sensitivity and mixed precision: keep the most sensitive units FP32 within a top-1 budget.

The search does not depend on the quantization API: the caller passes ``build(fp32_layers=(), only_layers=None)``,
which returns ``(model to evaluate, artifact to save)``. Technique ``mixed`` builds with torch.ao FX
(:func:`compressflow.quantize.graph.build_static`), ``mixed_pt2e`` with PT2E (:func:`compressflow.quantize.pt2e.build`).
No torch.ao import here.
"""

from __future__ import annotations

import csv
import sys

from torch import nn

from compressflow import evaluate as ev
from compressflow import plotting
from compressflow.quantize.error import sqnr_db

__all__ = ["sensitivity", "rank_layers", "mixed_precision", "read_sensitivity", "plot_sensitivity"]


def sensitivity(parent: nn.Module, build, val: dict, units: list[str], parent_logits=None) -> list[dict]:
    """Per unit (:func:`compressflow.quantize.units.quantizable_units`): val top-1 with only that unit INT8,
    its change vs float, and the logits' SQNR. ``parent_logits``: the parent's val logits, if already computed."""
    ref_logits = ev.predict(parent, val) if parent_logits is None else parent_logits
    base = ev.topk(ref_logits, val["y"], 1)
    rows = []
    for name in units:
        q, _ = build(only_layers=[name])
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
    build,
    val: dict,
    units: list[str],
    sens_rows: list[dict],
    max_accuracy_drop: float,
    keep_first_last: bool,
    parent_logits=None,
):
    """Greedy: keep the most sensitive units FP32 until the val top-1 drop is within budget, then
    try to give each of them back to INT8 (last added first) while the budget still holds.

    Returns the best trial's artifact (what ``build`` returned second) and the search's record. At
    least one unit stays INT8; if even that misses the budget, the best model reached is returned
    with ``budget_met: False``. ``parent_logits``: the parent's val logits, if already computed.
    """
    layers = list(units)
    base = ev.topk(ev.predict(parent, val) if parent_logits is None else parent_logits, val["y"], 1)
    forced = [layers[0], layers[-1]] if keep_first_last and len(layers) > 2 else []
    queue = [n for n in rank_layers(sens_rows, layers) if n not in forced]
    trials, best = [], None

    def within(t):
        return t["val_top1_drop"] <= max_accuracy_drop

    def score(t):  # within budget: fewest FP32 units; otherwise: smallest drop, then fewest units
        return (0, len(t["fp32_layers"]), 0.0) if within(t) else (1, t["val_top1_drop"], len(t["fp32_layers"]))

    def trial_of(fp32, phase):
        nonlocal best
        q, kept = build(fp32_layers=list(fp32))
        top1 = ev.topk(ev.predict(q, val), val["y"], 1)
        trial = {"phase": phase, "fp32_layers": list(fp32), "val_top1": top1, "val_top1_drop": base - top1}
        trials.append(trial)
        print(f"mixed ({phase}): {len(fp32)} FP32 units -> val top1 {top1:.4f} (drop {base - top1:+.4f})", file=sys.stderr)
        if best is None or score(trial) < score(best[1]):
            best = (kept, trial)
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
    kept, trial = best
    met = within(trial)
    info = {
        "budget_met": met,
        "max_accuracy_drop": max_accuracy_drop,
        "fp32_val_top1": base,
        **trial,
        "int8_layers": [n for n in layers if n not in trial["fp32_layers"]],
        "granularity": "unit: outermost block holding a Conv/Linear, else the layer",
        "trials": trials,
    }
    if not met:
        info["note"] = (
            f"budget not met: best val top-1 drop {trial['val_top1_drop']:.4f} > max_accuracy_drop {max_accuracy_drop:g} "
            f"with {len(trial['fp32_layers'])} of {len(layers)} units FP32; saved that best model"
        )
        print(info["note"], file=sys.stderr)
    return kept, info


def read_sensitivity(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def plot_sensitivity(rows: list[dict], path) -> None:
    plt = plotting.pyplot()
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
    plotting.save_png(fig, path)
    plt.close(fig)
