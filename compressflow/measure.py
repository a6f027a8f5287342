"""How fast and how heavy: the one timing loop, latency percentiles, peak memory and MAC count.

Every speed number in the workflow (``evaluate`` and the runtimes' rows against their parent,
``benchmark_artifact`` per batch size, ``benchmarks/composition.py`` side by side) comes from
:func:`time_alternating`, and every MAC figure (``benchmark_artifact``, ``prune_stats.json``) from
:func:`count_macs`.
"""

from __future__ import annotations

import os
import resource
import sys
import time

import numpy as np
import torch
from torch import nn

from compressflow.errors import CompressflowError

__all__ = [
    "BLOCK",
    "SETTLE_S",
    "time_alternating",
    "time_calls",
    "summary",
    "latency",
    "latency_pair",
    "peak_rss_mib",
    "size_mb",
    "count_macs",
]

# ---------------------------------------------------------------- timing

#: Timed calls per turn when several callables alternate, and the untimed time each later turn runs first.
#: Alternating every single call distorts results on few cores: one runtime's worker threads keep
#: spinning (OpenMP/TBB wait policies) while the next one runs. Measured on 2 cores, ResNet18 at 224²:
#: eager FP32 25.6 ms alternating per call vs 14.4 ms in blocks; OpenVINO INT8 3.6 ms in blocks of 10
#: with 2 warm-up calls vs 2.2 ms in blocks of 50 after 50 ms of untimed calls (2.2 ms alone too).
BLOCK = 25
SETTLE_S = 0.05


def _progress(n: int, desc: str | None):
    if desc is None:
        return range(n)
    try:
        from tqdm import tqdm
    except ImportError:  # the onnx env has no tqdm; the bar is cosmetic
        return range(n)
    return tqdm(range(n), desc=desc, file=sys.stderr, mininterval=1.0)


@torch.no_grad()
def time_alternating(
    fns: dict, example: torch.Tensor, *, warmup: int, iters: int, block: int = BLOCK, settle_s: float = SETTLE_S, desc: str | None = None
) -> dict:
    """Per-call times (ms) of several callables that take turns in blocks of ``block`` calls.

    The first turn starts with ``warmup`` untimed calls, each later one with untimed calls for at
    least ``settle_s`` seconds (and at least one call), so the previous runtime's threads have gone
    quiet and this one's are awake; turns rotate until every callable has ``iters`` timed calls, so
    slow drift of the machine hits all alike. ``desc`` shows a progress bar over the turns.
    """
    names = list(fns)
    times = {name: [] for name in names}
    if len(names) > 1:
        block = max(1, min(block, -(-iters // 2)))  # at least two turns each, so drift hits both alike
    for turn in _progress(-(-iters // block), desc):
        for name in names:
            fn = fns[name]
            if turn == 0:
                for _ in range(warmup):
                    fn(example)
            else:
                start = time.perf_counter()
                fn(example)
                while time.perf_counter() - start < settle_s:
                    fn(example)
            for _ in range(min(block, iters - len(times[name]))):
                t0 = time.perf_counter()
                fn(example)
                times[name].append((time.perf_counter() - t0) * 1e3)
    return times


def time_calls(fn, example: torch.Tensor, *, warmup: int, iters: int, desc: str | None = None) -> list[float]:
    """Per-call times (ms) of one callable: ``warmup`` untimed calls, then ``iters`` timed calls in a row."""
    return time_alternating({"fn": fn}, example, warmup=warmup, iters=iters, block=max(iters, 1), desc=desc)["fn"]


def summary(times_ms, batch: int, *, tail: bool = False) -> dict:
    """p50/p90 latency (ms) and throughput (images/s at the median); ``tail`` adds p99 and the mean."""
    arr = np.asarray(times_ms, dtype=float)
    if arr.size == 0:
        raise CompressflowError("no timed iterations", "set latency.iters and benchmark.iters to at least 1")
    out = {
        "latency_ms_p50": float(np.percentile(arr, 50)),
        "latency_ms_p90": float(np.percentile(arr, 90)),
        "throughput_ips": float(batch * 1e3 / np.median(arr)),
    }
    if tail:
        out.update(latency_ms_p99=float(np.percentile(arr, 99)), latency_ms_mean=float(arr.mean()))
    return out


def latency(fn, example: torch.Tensor, *, warmup: int, iters: int) -> dict:
    """:func:`summary` of ``fn(example)`` timed alone, plus the timed calls themselves (``latency_ms_calls``)."""
    times = time_calls(fn, example, warmup=warmup, iters=iters)
    return {**summary(times, example.shape[0]), "latency_ms_calls": [float(t) for t in times]}


def latency_pair(fn_a, fn_b, example: torch.Tensor, *, warmup: int, iters: int) -> tuple[dict, dict]:
    """:func:`summary` of two callables timed in alternating blocks (:func:`time_alternating`).

    Both carry their timed calls (``latency_ms_calls``): the report bootstraps the p50 and speed-up intervals from them.
    """
    times = time_alternating({"a": fn_a, "b": fn_b}, example, warmup=warmup, iters=iters)
    return tuple({**summary(times[k], example.shape[0]), "latency_ms_calls": [float(t) for t in times[k]]} for k in "ab")


# ---------------------------------------------------------------- memory and size


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports ru_maxrss in KiB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def size_mb(*paths) -> float:
    """Bytes on disk of an artifact's files together, in MiB."""
    return sum(os.path.getsize(p) for p in paths) / 2**20


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
    subclass the quantized Conv/Linear); bias adds, elementwise ops, pooling and BatchNorm are left
    out, as in the usual MAC figures for CNNs (Torch-Pruning's ``count_ops_and_params`` counts those
    too; ``tests/test_measure.py`` shows the two agree on the rest). The model's train/eval mode is
    restored afterwards.
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
    was_training = model.training
    try:
        model.eval()
        model(example)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total[0]
