"""Does stacking techniques beat the best single one? Times three artifacts per model, interleaved.

For each model in a finished run's ``results/report/summary.csv``:
  * eager FP32: the unpruned baseline ``fp32`` in PyTorch;
  * best single-technique INT8: post-training INT8 of ``fp32`` alone, on whichever of its runtimes
    is fastest here (PyTorch ``ptq`` variants whose parent is fp32, ONNX Runtime and OpenVINO INT8 of
    variant fp32 when deployed); every candidate is timed and the fastest wins;
  * recommended: the row the report recommends (``recommended`` column);
  * the PyTorch-native peers (issue 15): ``torch.compile`` FP32 (inductor, freezing) of ``fp32``, PT2E
    INT8 of ``fp32`` (``ptq_pt2e``/``qat_pt2e``/``mixed_pt2e`` variants, run compiled) and the FX INT8 of ``fp32``
    (``ptq``); ``best_native`` is the fastest of them, and ``speedup_vs_best_native`` compares every row
    with it (goal: recommended >= 1.5x at <= 1 pt top-1 drop; PT2E INT8 should be at least as fast as FX).
All artifacts of a model run in one process, taking turns in blocks of calls on the same input at batch 1, so machine
drift hits them alike. The README's headline speed-ups come from this file's CSV.

    python benchmarks/composition.py --results results --out benchmarks/composition.csv
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import pandas as pd
import torch

from compressflow import benchmark, layout, measure, sysinfo

INT8_RUNTIMES = ("onnxruntime-int8", "openvino-int8")


def candidates(rows: pd.DataFrame) -> pd.DataFrame:
    """Single-technique INT8 rows of one model: PTQ of fp32 in PyTorch, or fp32 quantized by a runtime."""
    torch_ptq = (rows.runtime == layout.PYTORCH) & (rows.technique == "ptq") & (rows.parent == layout.ROOT_VARIANT)
    runtime_int8 = (rows.variant == layout.ROOT_VARIANT) & rows.runtime.isin(INT8_RUNTIMES)
    return rows[torch_ptq | runtime_int8]


def native_peers(rows: pd.DataFrame) -> set:
    """(role, variant, runtime) of the PyTorch-native artifacts of fp32: torch.compile FP32, PT2E INT8, FX INT8."""
    from_fp32 = (rows.runtime == layout.PYTORCH) & (rows.parent == layout.ROOT_VARIANT)
    peers = (
        {("compile_fp32", layout.ROOT_VARIANT, "pytorch-compile")}
        if ((rows.variant == layout.ROOT_VARIANT) & (rows.runtime == "pytorch-compile")).any()
        else set()
    )
    peers |= {
        ("pt2e_int8", r.variant, r.runtime) for r in rows[from_fp32 & rows.technique.isin(layout.techniques(api="pt2e"))].itertuples()
    }
    peers |= {("fx_int8", r.variant, r.runtime) for r in rows[from_fp32 & (rows.technique == "ptq")].itertuples()}
    return peers


def load(runtime, path, args):
    if runtime == "pytorch-compile":  # model.pt through torch.compile (inductor, freezing); the warm-up compiles
        from compressflow import artifacts
        from compressflow.runtimes import compile as pt2
        from compressflow.runtimes import pytorch

        model, recipe = artifacts.load_model(path)
        return pytorch.runner(pt2.compiler()(model), args.threads), pytorch.precision(recipe) + " (torch.compile)"
    return benchmark.load_runner(runtime, path, args.threads, ov_precision=args.ov_precision, input_size=args.input_size)


def measure_model(results: Path, rows: pd.DataFrame, args) -> list[dict]:
    model = rows.model.iloc[0]
    picks = {("eager_fp32", layout.ROOT_VARIANT, layout.PYTORCH)}
    picks |= {("int8_candidate", r.variant, r.runtime) for r in candidates(rows).itertuples()}
    picks |= native_peers(rows)
    rec = rows[rows.recommended.astype(str) == "True"]
    picks |= {("recommended", r.variant, r.runtime) for r in rec.itertuples()}
    keys = sorted({(v, r) for _, v, r in picks})
    fns, precision, skipped = {}, {}, []
    for variant, runtime in keys:
        if runtime not in (*layout.CPU_RUNTIMES, "pytorch-compile"):
            skipped.append((variant, runtime))
            continue
        path = layout.artifact(model, variant, runtime, results=str(results))
        fns[(variant, runtime)], precision[(variant, runtime)] = load(runtime, path, args)
    for variant, runtime in skipped:
        print(f"{model}: {variant} [{runtime}] is not a CPU runtime; left out", file=sys.stderr)
    example = torch.zeros(1, 3, args.input_size, args.input_size)
    times = measure.time_alternating(fns, example, warmup=args.warmup, iters=args.iters, desc="turns")
    stats = {k: measure.summary(t, 1, tail=True) for k, t in times.items()}
    int8 = [(v, r) for role, v, r in picks if role == "int8_candidate" and (v, r) in stats]
    best = min(int8, key=lambda k: stats[k]["latency_ms_p50"]) if int8 else None
    roles = sorted(picks) + ([("best_single_int8", *best)] if best else [])
    native = [(v, r) for role, v, r in picks if role in ("compile_fp32", "pt2e_int8", "fx_int8") and (v, r) in stats]
    best_native = min(native, key=lambda k: stats[k]["latency_ms_p50"]) if native else None
    roles += [("best_native", *best_native)] if best_native else []
    eager = stats[(layout.ROOT_VARIANT, layout.PYTORCH)]["latency_ms_p50"]
    cpu = sysinfo.cpu()
    out = []
    for role, variant, runtime in roles:
        if (variant, runtime) not in stats:
            continue
        s = stats[(variant, runtime)]
        top1 = rows[(rows.variant == variant) & (rows.runtime == runtime)].top1
        out.append(
            {
                "model": model,
                "role": role,
                "variant": variant,
                "runtime": runtime,
                "precision": precision[(variant, runtime)],
                "latency_ms_p50": s["latency_ms_p50"],
                "latency_ms_p90": s["latency_ms_p90"],
                "speedup_vs_eager_fp32": eager / s["latency_ms_p50"],
                "speedup_vs_best_single": stats[best]["latency_ms_p50"] / s["latency_ms_p50"] if best else None,
                "best_single": f"{best[0]} [{best[1]}]" if best else None,
                "speedup_vs_best_native": stats[best_native]["latency_ms_p50"] / s["latency_ms_p50"] if best_native else None,
                "best_native": f"{best_native[0]} [{best_native[1]}]" if best_native else None,
                "top1": float(top1.iloc[0]) if len(top1) else None,
                "batch": 1,
                "input_size": args.input_size,
                "threads": args.threads,
                "iters": args.iters,
                **cpu,
            }
        )
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default="results", type=Path, help="a finished run's results/ folder")
    p.add_argument("--out", default="benchmarks/composition.csv", type=Path)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--ov-precision", default="f32", choices=["f32", "auto"], help="OpenVINO INFERENCE_PRECISION_HINT")
    p.add_argument("--models", nargs="*", help="only these models (default: all in summary.csv)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    summary = pd.read_csv(args.results / "report" / "summary.csv")
    if "recommended" not in summary.columns:
        sys.exit(f"{args.results}/report/summary.csv has no 'recommended' column; fix: rerun the workflow's make_report with this version")
    rows = []
    for model, group in summary.groupby("model", sort=True):
        if not args.models or model in args.models:
            rows += measure_model(args.results, group, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(
        pd.DataFrame(rows)[
            [
                "model",
                "role",
                "variant",
                "runtime",
                "precision",
                "latency_ms_p50",
                "speedup_vs_eager_fp32",
                "speedup_vs_best_single",
                "speedup_vs_best_native",
                "top1",
            ]
        ].to_string(index=False)
    )


if __name__ == "__main__":
    main()
