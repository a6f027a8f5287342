"""Accuracy, agreement with the parent and size of one artifact.

CPU latencies are not timed here: ``benchmark_artifact`` (:mod:`.benchmark`) times every CPU runtime's
artifact alone on the cores, against its parent, and the report takes every latency from it. Only
runtimes that job does not time (TensorRT on the GPU) pass callables to :func:`metrics` to be timed.
"""

from __future__ import annotations

import torch

from compressflow import data, layout, measure, models, sysinfo
from compressflow import device as devices

__all__ = ["predict", "topk", "agreement", "per_class_top1", "metrics", "evaluate"]


@torch.no_grad()
def predict(model: torch.nn.Module, split: dict, batch_size: int = 256) -> torch.Tensor:
    """Logits on the CPU; each batch runs on the device the model is on."""
    model.eval()
    dev = devices.of(model)
    return torch.cat([model(x.to(dev)).float().cpu() for x, _ in data.batches(split, batch_size)])


def topk(logits: torch.Tensor, y: torch.Tensor, k: int) -> float | None:
    """Top-k accuracy; None when k >= the number of classes (it would be 1.0 whatever the model does)."""
    if k >= logits.shape[1]:
        return None
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


def correct_top1(logits: torch.Tensor, y: torch.Tensor) -> str:
    """Per test image, '1' if the top-1 prediction is right: the report's paired tests compare these strings."""
    return "".join("1" if ok else "0" for ok in (logits.argmax(1) == y).tolist())


def per_class_top1(logits: torch.Tensor, y: torch.Tensor, classes) -> dict:
    pred = logits.argmax(1)
    return {str(c): (pred[y == i] == i).float().mean().item() for i, c in enumerate(classes) if (y == i).any()}


def metrics(
    runtime: str,
    logits: torch.Tensor,
    test: dict,
    *,
    size_mb: float,
    params: int,
    threads: int,
    parent_logits: torch.Tensor | None,
    own_fn=None,
    parent_fn=None,
    latency: dict | None = None,
    accuracy_device: str = "cpu",
    latency_device: str = "cpu",
) -> dict:
    """The metrics row of one artifact in any runtime; every evaluate rule writes these keys.

    ``accuracy_device``/``latency_device`` say where the logits and the latency were computed.

    Latency only for a runtime ``benchmark_artifact`` does not time (``layout.CPU_RUNTIMES`` it does):
    with ``own_fn``, ``latency`` is the config's section (``input_size``, ``warmup``, ``iters``); with a
    parent callable too, both are timed in the same process in alternating blocks.
    """
    y = test["y"]
    row = {
        "runtime": runtime,
        "top1": topk(logits, y, 1),
        "top5": topk(logits, y, 5),
        "n_test": int(len(y)),
        "params": int(params),
        "size_mb": size_mb,
        "per_class_top1": per_class_top1(logits, y, test["classes"]),
        "correct_top1": correct_top1(logits, y),
        "threads": threads,
        "accuracy_device": accuracy_device,
        "latency_device": latency_device,
        **sysinfo.cpu(),
    }
    if parent_logits is not None:
        row.update(agreement(logits, parent_logits))
    if own_fn is None:
        return row
    row.update(latency_input=latency["input_size"], latency_batch=1)
    example = torch.zeros(1, 3, latency["input_size"], latency["input_size"])
    if parent_fn is None:
        row.update(measure.latency(own_fn, example, warmup=latency["warmup"], iters=latency["iters"]))
    else:
        own, theirs = measure.latency_pair(own_fn, parent_fn, example, warmup=latency["warmup"], iters=latency["iters"])
        row.update(own)
        row["parent_latency_ms_p50"] = theirs["latency_ms_p50"]
        row["parent_latency_ms_calls"] = theirs["latency_ms_calls"]
        row["speedup_vs_parent"] = theirs["latency_ms_p50"] / own["latency_ms_p50"]
    return row


def evaluate(
    model: torch.nn.Module,
    test: dict,
    model_path,
    *,
    batch_size: int,
    threads: int,
    parent_logits: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
) -> tuple[dict, torch.Tensor]:
    """Accuracy metrics of one PyTorch artifact (:func:`metrics`); returns (metrics, test logits).

    Accuracy runs on ``device`` (an INT8 model on the CPU, where its kernels are); latency is timed
    by ``benchmark_artifact`` on the CPU, so a latency row means the same thing whichever device the accuracy used.
    """
    torch.set_num_threads(threads)
    on = torch.device("cpu") if devices.is_int8(model) else torch.device(device)
    logits = predict(model.to(on), test, batch_size)
    model.cpu()
    row = metrics(
        layout.PYTORCH,
        logits,
        test,
        size_mb=measure.size_mb(model_path),
        params=models.count_params(model),
        threads=threads,
        parent_logits=parent_logits,
        accuracy_device=devices.describe(on),
    )
    return row, logits
