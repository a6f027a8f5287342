"""Speed of one deployable artifact per job: latency percentiles, throughput, peak memory, MACs.

``evaluate`` times an artifact against its parent at batch 1 to give a speed-up; this module times
each artifact alone, at every configured batch size, in a fresh process (one Snakemake job), and
records what the number depends on: the CPU and its ISA flags, threads, the precision that really
ran and the library versions. ``benchmarks/composition.py`` reuses it to time artifacts side by side, in alternating blocks.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from compressflow import evaluate as ev
from compressflow import export, io, models, runtimes, sysinfo
from compressflow.errors import CompressflowError

PYTORCH = "pytorch"
ORT_RUNTIMES = ("onnxruntime", "onnxruntime-int8")
OV_RUNTIMES = ("openvino", "openvino-int8", "openvino-qdq")
RUNTIMES = (PYTORCH, *ORT_RUNTIMES, *OV_RUNTIMES)


# ---------------------------------------------------------------- MACs


def _conv_macs(module, out: torch.Tensor) -> int:
    k = int(np.prod(module.kernel_size))
    return int(out.numel()) * (module.in_channels // module.groups) * k


def _linear_macs(module, out: torch.Tensor) -> int:
    return int(out.numel()) * module.in_features


def _rnn_macs(module, inp) -> int:
    """Multiply-accumulates of the gate matmuls over every time step, layer and direction."""
    x = inp[0] if isinstance(inp, tuple) else inp
    if not isinstance(x, torch.Tensor):  # PackedSequence: count the real steps
        steps = int(x.data.shape[0])
    else:
        steps = int(x.shape[0] * x.shape[1]) if x.dim() == 3 else int(x.shape[0])
    gates = {"LSTM": 4, "GRU": 3}.get(getattr(module, "mode", None) or type(module).__name__, 4)
    h, dirs = module.hidden_size, 2 if module.bidirectional else 1
    total = 0
    for layer in range(module.num_layers):
        in_size = module.input_size if layer == 0 else h * dirs
        total += dirs * gates * h * (in_size + h)
    return steps * total


def _mac_types():
    """Float, QAT and torch.ao quantized (static and dynamic) layer classes that do the arithmetic."""
    from torch.ao.nn import quantized as nnq
    from torch.ao.nn.quantized import dynamic as nnqd

    conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nnq.Conv1d, nnq.Conv2d, nnq.Conv3d)
    linear = (nn.Linear, nnq.Linear, nnqd.Linear)
    rnn = (nn.LSTM, nn.GRU, nnqd.LSTM, nnqd.GRU)
    return conv, linear, rnn


@torch.no_grad()
def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass on ``example`` (whole batch), from forward hooks.

    Counts Conv, Linear and LSTM/GRU layers, float or torch.ao quantized (fused ConvReLU/LinearReLU
    subclass the quantized Conv/Linear); elementwise ops, pooling and BatchNorm are left out, as in
    the usual MAC figures for CNNs.
    """
    conv, linear, rnn = _mac_types()
    total = [0]

    def hook(module, inp, out):
        if isinstance(module, conv):
            total[0] += _conv_macs(module, out)
        elif isinstance(module, linear):
            total[0] += _linear_macs(module, out)
        else:
            total[0] += _rnn_macs(module, inp)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, conv + linear + rnn)]
    try:
        model.eval()
        model(example)
    finally:
        for h in handles:
            h.remove()
    return total[0]


# ---------------------------------------------------------------- timing


def summary(times_ms, batch: int) -> dict:
    """p50/p90/p99 latency (ms) and throughput (images/s at the median) of one batch size."""
    arr = np.asarray(times_ms, dtype=float)
    if arr.size == 0:
        raise CompressflowError("no timed iterations", "set benchmark.iters to at least 1")
    return {**ev._summary(arr, batch), "latency_ms_p99": float(np.percentile(arr, 99)), "latency_ms_mean": float(arr.mean())}


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports ru_maxrss in KiB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def _progress(n: int, desc: str):
    try:
        from tqdm import tqdm
    except ImportError:  # the onnx env has no tqdm; the bar is cosmetic
        return range(n)
    return tqdm(range(n), desc=desc, file=sys.stderr, mininterval=1.0)


@torch.no_grad()
def time_fn(fn, example: torch.Tensor, *, warmup: int, iters: int, desc: str = "timing") -> list[float]:
    """Per-call wall-clock times in ms after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn(example)
    times = []
    for _ in _progress(iters, desc):
        t0 = time.perf_counter()
        fn(example)
        times.append((time.perf_counter() - t0) * 1e3)
    return times


@torch.no_grad()
def time_interleaved(
    fns: dict, example: torch.Tensor, *, warmup: int, iters: int, block: int = ev.BLOCK, settle_s: float = ev.SETTLE_S
) -> dict:
    """Per-call times of several callables taking turns in blocks on the same input, so drift hits all alike."""
    return ev.time_alternating(
        fns, example, warmup=warmup, iters=iters, block=block, settle_s=settle_s, progress=lambda n: _progress(n, "turns")
    )


# ---------------------------------------------------------------- loading artifacts


def torch_precision(recipe: dict) -> str:
    """fp32, int8 (static/QAT), int8-dynamic (weights only, activations float) or int8+fp32 (mixed precision)."""
    quant = [t for t in recipe.get("transforms", []) if t.get("kind") == "quantize"]
    if not quant:
        return "fp32"
    if quant[-1].get("mode") == "dynamic":
        return "int8-dynamic"
    return "int8+fp32" if quant[-1].get("fp32_layers") else "int8"


def load_runner(runtime: str, artifact, threads: int, *, ov_precision: str = "f32"):
    """(callable on a float NCHW tensor, precision that runs) for one artifact file of ``runtime``."""
    if runtime == PYTORCH:
        model, recipe = io.load_model(artifact)
        return runtimes.torch_runner(model, threads), torch_precision(recipe)
    if runtime in ORT_RUNTIMES:
        sess = export.session(artifact, threads)
        return runtimes.ort_runner(sess), ("int8" if runtime == "onnxruntime-int8" else "fp32")
    if runtime in OV_RUNTIMES:
        compiled = runtimes.compile_openvino(artifact, threads, ov_precision)
        prefix = "" if runtime == "openvino" else "int8+"
        return runtimes.ov_runner(compiled), prefix + runtimes.precision_of(compiled)
    raise CompressflowError(f"benchmark runtime '{runtime}' is unknown", f"use one of: {', '.join(RUNTIMES)}")


def artifact_path(results, model: str, variant: str, runtime: str) -> Path:
    """Where the workflow writes the artifact ``runtime`` runs (openvino-qdq runs the ORT QDQ file)."""
    base = Path(results) / model / variant
    return (
        base
        / {
            PYTORCH: "model.pt",
            "onnxruntime": "onnx/model.onnx",
            "onnxruntime-int8": "onnxruntime-int8/model.onnx",
            "openvino": "openvino/model.xml",
            "openvino-int8": "openvino-int8/model.xml",
            "openvino-qdq": "onnxruntime-int8/model.onnx",
        }[runtime]
    )


def macs_and_params(torch_model_path, input_size: int) -> tuple[int, int]:
    """MACs per image at ``input_size`` and stored parameters of the PyTorch artifact."""
    model, _ = io.load_model(torch_model_path)
    return count_macs(model, torch.zeros(1, 3, input_size, input_size)), models.count_params(model)


def benchmark(
    runtime: str, artifact, torch_model, *, batch_sizes, warmup: int, iters: int, input_size: int, threads: int, ov_precision="f32"
):
    """Every number of one artifact: per batch size latency/throughput/RSS, plus MACs, params, machine and versions."""
    torch.set_num_threads(threads)
    rss_start = peak_rss_mib()
    fn, precision = load_runner(runtime, artifact, threads, ov_precision=ov_precision)
    rss_loaded = peak_rss_mib()
    rows = []
    for batch in batch_sizes:
        example = torch.zeros(int(batch), 3, input_size, input_size)
        times = time_fn(fn, example, warmup=warmup, iters=iters, desc=f"{runtime} batch {batch}")
        rows.append({"batch": int(batch), **summary(times, int(batch)), "peak_rss_mib": peak_rss_mib()})
        print(f"{runtime} batch {batch}: p50 {rows[-1]['latency_ms_p50']:.3f} ms, {rows[-1]['throughput_ips']:.1f} img/s", file=sys.stderr)
    macs, params = macs_and_params(torch_model, input_size)
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
        **sysinfo.cpu(),
        "versions": sysinfo.versions(),
    }


# ---------------------------------------------------------------- workflow steps


def step_benchmark_artifact(inputs, outputs, params, threads):
    """One (model, variant, runtime): ``params['benchmark']`` is the config's benchmark section."""
    b = params["benchmark"]
    out = benchmark(
        params["runtime"],
        inputs["artifact"],
        inputs["torch_model"],
        batch_sizes=b["batch_sizes"],
        warmup=b["warmup"],
        iters=b["iters"],
        input_size=b["input_size"],
        threads=b["threads"],
        ov_precision=params.get("ov_precision", "f32"),
    )
    out = {"model": params["model"], "variant": params["variant"], **out, "job_threads": threads}
    io.write_json(out, outputs["json"])


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
        rec = io.read_json(path)
        base = {
            k: rec[k] for k in ("model", "variant", "runtime", "precision", "macs", "params", "input_size", "threads", "cpu_model", "isa")
        }
        base["gmacs"] = rec["macs"] / 1e9
        for b in rec["batches"]:
            rows.append(
                {
                    **base,
                    **{k: b[k] for k in ("batch", "latency_ms_p50", "latency_ms_p90", "latency_ms_p99", "throughput_ips", "peak_rss_mib")},
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


def step_collect_benchmarks(inputs, outputs, params, threads):
    df = collect(inputs["jsons"] if isinstance(inputs["jsons"], list) else [inputs["jsons"]])
    with io.atomic_path(outputs["csv"]) as tmp:
        df.to_csv(tmp, index=False)
    shown = df[[c for c in COLUMNS if c not in ("macs", "cpu_model", "isa")]]
    head = ""
    if len(df):
        head = f"CPU: {df.cpu_model.iloc[0]} ({df.isa.iloc[0]}); input {df.input_size.iloc[0]}x{df.input_size.iloc[0]}; threads {df.threads.iloc[0]}\n\n"
    with io.atomic_path(outputs["md"]) as tmp:
        Path(tmp).write_text("# Benchmarks\n\n" + head + shown.to_markdown(index=False, floatfmt=".4g") + "\n")
