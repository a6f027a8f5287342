"""Rule ``evaluate_compile``: the ``pytorch-compile`` row, torch.compile (inductor, freezing) of a deployed float variant."""

from __future__ import annotations

import sys
import tempfile

import torch

from compressflow import data, files, layout, measure, models
from compressflow import evaluate as ev
from compressflow.runtimes import compile as pt2
from compressflow.runtimes import pytorch


def pt2_row(runtime, own, parent_fn, parent_runtime, inputs, params, torch_model, torch_logits, extra, predict_fn=None) -> dict:
    """The metrics row of a PyTorch 2 runtime: top-1 with ``predict_fn`` (default ``own``), latency of ``own``
    against ``parent_fn`` timed in the same process."""
    test = data.load_split(inputs["test"])
    logits = _predict(predict_fn or own, test, params["batch_size"])
    on_disk = [inputs["package"]] if inputs.get("package") else [inputs["torch_model"]]
    row = ev.metrics(
        runtime,
        logits,
        test,
        own_fn=own,
        parent_fn=parent_fn,
        size_mb=measure.size_mb(*on_disk),
        params=models.count_params(torch_model),
        threads=params["threads"],
        latency=params["latency"],
        parent_logits=torch_logits,
    )
    row.update(parent_runtime=parent_runtime, **extra)
    if row.get("speedup_vs_parent") is not None and row["speedup_vs_parent"] < 1:
        print(
            f"WARNING: {runtime} is slower than its parent ({parent_runtime}): speed-up {row['speedup_vs_parent']:.2f}x; "
            "see NOTES on CPU weight prepacking before reporting it",
            file=sys.stderr,
        )
    return row


@torch.no_grad()
def _predict(fn, split, batch_size):
    return torch.cat([fn(x) for x, _ in data.batches(split, batch_size)])


def evaluate_compile(inputs, outputs, params, threads):
    torch.set_num_threads(params["threads"])
    torch_model, torch_logits = pytorch.reference(inputs)
    size = params["latency"]["input_size"]
    with tempfile.TemporaryDirectory(prefix="inductor-") as cache, pt2.cache_dir(cache):
        compiled, seconds = pt2.compile_model(torch_model, torch.zeros(1, 3, size, size), params["threads"])
        row = pt2_row(
            params["runtime"],
            compiled,
            pytorch.runner(torch_model, params["threads"]),
            layout.PYTORCH,
            inputs,
            params,
            torch_model,
            torch_logits,
            {"compiled": pt2.SETTING, "compile_s": round(seconds, 3)},
        )
    print(f"{params['runtime']}: top1 {row['top1']:.4f}, p50 {row['latency_ms_p50']:.2f} ms, compile {seconds:.1f} s", file=sys.stderr)
    files.write_json(row, outputs["metrics"])
