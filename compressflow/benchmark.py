"""Speed of one deployable artifact per job: latency percentiles, throughput, peak memory, MACs.

The only source of the report's CPU latencies: this module times each artifact alone on the job's
cores, at batch 1 against its parent in alternating blocks (the speed-up) and at every configured
batch size, in a fresh process (one Snakemake job), and
records what the number depends on: the CPU and its ISA flags, threads, the precision that really
ran and the library versions. ``benchmarks/composition.py`` reuses it to time artifacts side by side, in alternating blocks.
"""

from __future__ import annotations

import sys

import torch

from compressflow import artifacts, files, measure, models, recipes, sysinfo
from compressflow.errors import CompressflowError
from compressflow.layout import CPU_RUNTIMES, ORT_RUNTIMES, OV_RUNTIMES, PYTORCH
from compressflow.runtimes import onnx, onnxruntime, openvino, pytorch

__all__ = ["load_runner", "macs_and_params", "benchmark", "COLUMNS", "collect"]


def load_runner(
    runtime: str, artifact, threads: int, *, ov_precision: str = "f32", input_size: int | None = None, loaded: dict | None = None
):
    """(callable on a float NCHW tensor, precision that runs) for one artifact file of ``runtime`` (a CPU runtime).

    ``loaded``: PyTorch models this job already rebuilt, by (file, size) (see :func:`_pytorch_model`)."""
    if runtime == PYTORCH:
        model, recipe = _pytorch_model(artifact, input_size, loaded)
        if pytorch.api(recipe) == "pt2e":  # a PT2E graph runs as deployed: compiled (the warm-up calls compile)
            from compressflow.runtimes import compile as pt2

            return pytorch.runner(pt2.compiler()(model), threads), pytorch.precision(recipe) + " (torch.compile)"
        return pytorch.runner(model, threads), pytorch.precision(recipe)
    if runtime in ORT_RUNTIMES:
        sess = onnx.session(artifact, threads)
        return onnxruntime.runner(sess), ("int8" if runtime == "onnxruntime-int8" else "fp32")
    if runtime in OV_RUNTIMES:
        compiled = openvino.compile_model(artifact, threads, ov_precision)
        prefix = "" if runtime == "openvino" else "int8+"
        return openvino.runner(compiled), prefix + openvino.precision_of(compiled)
    raise CompressflowError(f"benchmark runtime '{runtime}' is unknown", f"use one of: {', '.join(CPU_RUNTIMES)}")


def _pytorch_model(path, input_size: int | None, loaded: dict | None) -> tuple[torch.nn.Module, dict]:
    """(model, recipe) of a PyTorch artifact at ``input_size``, rebuilt once per job: the artifact, its parent and
    the MAC count often name the same file, and a QAT PT2E rebuild takes about 15 s. A PT2E graph's height/width
    are static, so it is rebuilt for ``input_size`` (same state and parameters); other models ignore the size."""
    loaded = {} if loaded is None else loaded
    key = (str(path), input_size)
    if key not in loaded:
        model, recipe = artifacts.load_model(path, input_size)
        model.eval()  # not chained: an exported graph's patched eval() does not return the module
        loaded[key] = (model, recipe)
    return loaded[key]


def macs_and_params(torch_model_path, input_size: int, *, loaded: dict | None = None) -> tuple[int, int]:
    """MACs per image at ``input_size`` and stored parameters of the PyTorch artifact (``loaded``: as in :func:`load_runner`)."""
    model, recipe = _pytorch_model(torch_model_path, input_size, loaded)
    counted = model
    if pytorch.api(recipe) == "pt2e":  # an exported graph has no Conv/Linear modules to hook, and a static size: its float architecture
        counted = recipes.rebuild(dict(recipe, transforms=recipe["transforms"][:-1]))
    return measure.count_macs(counted, torch.zeros(1, 3, input_size, input_size)), models.count_params(model)


def benchmark(
    runtime: str,
    artifact,
    torch_model,
    *,
    batch_sizes,
    warmup: int,
    iters: int,
    input_size: int,
    threads: int,
    ov_precision="f32",
    parent: tuple[str, str] | None = None,
):
    """Every number of one artifact: per batch size latency/throughput/RSS, plus MACs, params, machine and versions.

    Batch 1 is always timed: it is the report's latency. With ``parent`` = (runtime, artifact file), batch 1
    times this artifact and its parent in alternating blocks (:func:`measure.time_alternating`), so
    ``speedup_vs_parent`` compares like with like; the batch-1 row keeps its timed calls for the report's interval.
    """
    torch.set_num_threads(threads)
    loaded = {}
    rss_start = measure.peak_rss_mib()
    fn, precision = load_runner(runtime, artifact, threads, ov_precision=ov_precision, input_size=input_size, loaded=loaded)
    rss_loaded = measure.peak_rss_mib()
    parent_fn = (
        load_runner(parent[0], parent[1], threads, ov_precision=ov_precision, input_size=input_size, loaded=loaded)[0] if parent else None
    )
    other = _other_hint(runtime, artifact, threads, ov_precision)
    hints = {}
    rows = []
    for batch in sorted({1, *(int(b) for b in batch_sizes)}):
        example = torch.zeros(batch, 3, input_size, input_size)
        desc = f"{runtime} batch {batch}"
        extra = {}
        if batch == 1 and (parent_fn is not None or other):
            fns = {"own": fn, **({"parent": parent_fn} if parent_fn is not None else {}), **({"other_hint": other["fn"]} if other else {})}
            timed = measure.time_alternating(fns, example, warmup=warmup, iters=iters, desc=desc + " vs " + ", ".join(list(fns)[1:]))
            times = timed["own"]
            if parent_fn is not None:
                theirs = measure.summary(timed["parent"], 1)
                extra = {
                    "parent_latency_ms_p50": theirs["latency_ms_p50"],
                    "parent_latency_ms_p90": theirs["latency_ms_p90"],
                    "parent_latency_ms_calls": [float(t) for t in timed["parent"]],  # the report's paired speed-up interval
                }
            if other:
                hints = _hint_columns(ov_precision, precision, measure.summary(times, 1), other, measure.summary(timed["other_hint"], 1))
        else:
            times = measure.time_calls(fn, example, warmup=warmup, iters=iters, desc=desc)
        row = {"batch": batch, **measure.summary(times, batch, tail=True), **extra, "peak_rss_mib": measure.peak_rss_mib()}
        if extra:
            row["speedup_vs_parent"] = extra["parent_latency_ms_p50"] / row["latency_ms_p50"]
        if batch == 1:
            row["latency_ms_calls"] = [float(t) for t in times]
        rows.append(row)
        print(f"{runtime} batch {batch}: p50 {row['latency_ms_p50']:.3f} ms, {row['throughput_ips']:.1f} img/s", file=sys.stderr)
    macs, params = macs_and_params(torch_model, input_size, loaded=loaded)
    return {
        "runtime": runtime,
        "artifact": str(artifact),
        "precision": precision,
        "macs": macs,
        "params": params,
        "input_size": input_size,
        "threads": threads,
        "warmup": warmup,
        "iters": iters,
        "peak_rss_mib_before_load": rss_start,
        "peak_rss_mib_after_load": rss_loaded,
        "batches": rows,
        "parent_runtime": parent[0] if parent else None,
        "parent_artifact": str(parent[1]) if parent else None,
        **hints,
        **sysinfo.cpu(),
        "versions": sysinfo.versions(),
    }


def _other_hint(runtime: str, artifact, threads: int, ov_precision: str) -> dict | None:
    """OpenVINO rows: the same file compiled with the precision hint the config did not choose ('auto' lets the
    CPU plugin pick bf16 where the CPU has it), timed beside the chosen one so the row shows what the hint costs."""
    if runtime not in OV_RUNTIMES:
        return None
    hint = "auto" if ov_precision == "f32" else "f32"
    compiled = openvino.compile_model(artifact, threads, hint)
    return {"hint": hint, "fn": openvino.runner(compiled), "precision": openvino.precision_of(compiled)}


def _hint_columns(chosen: str, chosen_precision: str, chosen_summary: dict, other: dict, other_summary: dict) -> dict:
    """``precision_*_hint`` and ``latency_ms_p50_*_hint`` for the default ('auto') and the f32 hint (labelled: not the row's latency)."""
    name = {"auto": "default", "f32": "f32"}
    by_hint = {
        chosen: (chosen_precision.removeprefix("int8+"), chosen_summary["latency_ms_p50"]),
        other["hint"]: (other["precision"], other_summary["latency_ms_p50"]),
    }
    out = {}
    for hint, (precision, p50) in sorted(by_hint.items()):
        out[f"precision_{name[hint]}_hint"] = precision
        out[f"latency_ms_p50_{name[hint]}_hint"] = p50
    return out


# ---------------------------------------------------------------- workflow steps


COLUMNS = [
    "model",
    "variant",
    "runtime",
    "batch",
    "precision",
    "latency_ms_p50",
    "latency_ms_p90",
    "latency_ms_p99",
    "throughput_ips",
    "parent_latency_ms_p50",
    "speedup_vs_parent",
    "peak_rss_mib",
    "rss_growth_mib",
    "macs",
    "gmacs",
    "params",
    "input_size",
    "threads",
    "cpu_model",
    "isa",
]


def collect(paths):
    """One DataFrame row per (model, variant, runtime, batch) from the benchmark JSON files."""
    import pandas as pd

    rows = []
    for path in paths:
        rec = files.read_json(path)
        if rec.get("status") == "unsupported":  # the artifact was never built; the summary report has its row and reason
            continue
        base = {
            k: rec[k] for k in ("model", "variant", "runtime", "precision", "macs", "params", "input_size", "threads", "cpu_model", "isa")
        }
        base["gmacs"] = rec["macs"] / 1e9
        for b in rec["batches"]:
            rows.append(
                {
                    **base,
                    **{k: b[k] for k in ("batch", "latency_ms_p50", "latency_ms_p90", "latency_ms_p99", "throughput_ips", "peak_rss_mib")},
                    **{k: b.get(k) for k in ("parent_latency_ms_p50", "speedup_vs_parent")},
                    "rss_growth_mib": b["peak_rss_mib"] - rec["peak_rss_mib_before_load"],
                }
            )
        versions = rec.get("versions", {})
        for row in rows[len(rows) - len(rec["batches"]) :]:
            row.update({f"v_{k}": v for k, v in versions.items()})
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=COLUMNS)
    extra = [c for c in df.columns if c not in COLUMNS]
    return df[COLUMNS + extra].sort_values(["model", "variant", "runtime", "batch"], kind="stable").reset_index(drop=True)
