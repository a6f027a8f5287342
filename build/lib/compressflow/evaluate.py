"""Accuracy, agreement with the parent, size and latency of one artifact."""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from compressflow import data, models, sysinfo


@torch.no_grad()
def predict(model: torch.nn.Module, split: dict, batch_size: int = 256) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x) for x, _ in data.batches(split, batch_size)])


def topk(logits: torch.Tensor, y: torch.Tensor, k: int) -> float:
    k = min(k, logits.shape[1])
    return (logits.topk(k, dim=1).indices == y[:, None]).any(dim=1).float().mean().item()


def agreement(logits: torch.Tensor, parent_logits: torch.Tensor) -> dict:
    """How closely an artifact reproduces its parent's outputs on the same inputs."""
    diff = logits.float() - parent_logits.float()
    cos = torch.nn.functional.cosine_similarity(logits.float(), parent_logits.float(), dim=1)
    return {
        "top1_agreement_vs_parent": (logits.argmax(1) == parent_logits.argmax(1)).float().mean().item(),
        "mse_vs_parent": diff.pow(2).mean().item(),
        "max_abs_diff_vs_parent": diff.abs().max().item(),
        "cosine_vs_parent": cos.mean().item(),
    }


def per_class_top1(logits: torch.Tensor, y: torch.Tensor, classes) -> dict:
    pred = logits.argmax(1)
    return {str(c): (pred[y == i] == i).float().mean().item() for i, c in enumerate(classes) if (y == i).any()}


@torch.no_grad()
def latency(fn, example: torch.Tensor, *, warmup: int, iters: int) -> dict:
    """Wall-clock latency of ``fn(example)`` in ms: p50/p90 over ``iters`` timed calls."""
    for _ in range(warmup):
        fn(example)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn(example)
        times.append((time.perf_counter() - t0) * 1e3)
    return _summary(np.asarray(times), example.shape[0])


#: Timed calls per turn when several callables alternate, and the untimed time each later turn runs first.
#: Alternating every single call distorts results on few cores: one runtime's worker threads keep
#: spinning (OpenMP/TBB wait policies) while the next one runs. Measured on 2 cores, ResNet18 at 224²:
#: eager FP32 25.6 ms alternating per call vs 14.4 ms in blocks; OpenVINO INT8 3.6 ms in blocks of 10
#: with 2 warm-up calls vs 2.2 ms in blocks of 50 after 50 ms of untimed calls (2.2 ms alone too).
BLOCK = 25
SETTLE_S = 0.05


def time_alternating(
    fns: dict, example: torch.Tensor, *, warmup: int, iters: int, block: int = BLOCK, settle_s: float = SETTLE_S, progress=None
) -> dict:
    """Per-call times (ms) of several callables that take turns in blocks of ``block`` calls.

    The first turn starts with ``warmup`` untimed calls, each later one with untimed calls for at
    least ``settle_s`` seconds (and at least one call), so the previous runtime's threads have gone
    quiet and this one's are awake; turns rotate until every callable has ``iters`` timed calls, so
    slow drift of the machine hits all alike.
    """
    names = list(fns)
    times = {name: [] for name in names}
    turns = range(-(-iters // block)) if progress is None else progress(-(-iters // block))
    for turn in turns:
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


@torch.no_grad()
def latency_pair(fn_a, fn_b, example: torch.Tensor, *, warmup: int, iters: int) -> tuple[dict, dict]:
    """Latency of two callables measured in alternating blocks (:func:`time_alternating`)."""
    times = time_alternating({"a": fn_a, "b": fn_b}, example, warmup=warmup, iters=iters)
    return _summary(np.asarray(times["a"]), example.shape[0]), _summary(np.asarray(times["b"]), example.shape[0])


def _summary(arr: np.ndarray, batch: int) -> dict:
    return {
        "latency_ms_p50": float(np.percentile(arr, 50)),
        "latency_ms_p90": float(np.percentile(arr, 90)),
        "throughput_ips": float(batch * 1e3 / np.median(arr)),
    }


def evaluate(
    model: torch.nn.Module,
    test: dict,
    model_path,
    *,
    batch_size: int,
    threads: int,
    latency_input: int,
    warmup: int,
    iters: int,
    parent: torch.nn.Module | None = None,
    parent_logits: torch.Tensor | None = None,
) -> tuple[dict, torch.Tensor]:
    """All metrics of one PyTorch artifact; returns (metrics, test logits).

    The parent is timed in the same process, interleaved with the artifact, so
    ``speedup_vs_parent`` compares like with like on whatever machine runs the job.
    """
    torch.set_num_threads(threads)
    logits = predict(model, test, batch_size)
    y = test["y"]
    metrics = {
        "runtime": "pytorch",
        "top1": topk(logits, y, 1),
        "top5": topk(logits, y, 5),
        "n_test": int(len(y)),
        "params": int(models.count_params(model)),
        "size_mb": os.path.getsize(model_path) / 2**20,
        "per_class_top1": per_class_top1(logits, y, test["classes"]),
        "threads": threads,
        "latency_input": latency_input,
        "latency_batch": 1,
        **sysinfo.cpu(),
    }
    if parent_logits is not None:
        metrics.update(agreement(logits, parent_logits))
    example = torch.zeros(1, 3, latency_input, latency_input)
    if parent is None:
        metrics.update(latency(model, example, warmup=warmup, iters=iters))
    else:
        own, theirs = latency_pair(model, parent, example, warmup=warmup, iters=iters)
        metrics.update(own)
        metrics["parent_latency_ms_p50"] = theirs["latency_ms_p50"]
        metrics["speedup_vs_parent"] = theirs["latency_ms_p50"] / own["latency_ms_p50"]
    return metrics, logits
