"""Rule ``evaluate``: accuracy and agreement with the parent of one PyTorch artifact (benchmark_artifact times it)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

from compressflow import artifacts, data, device, files, measure, models, stats
from compressflow import evaluate as ev
from compressflow.runtimes import compile as pt2
from compressflow.runtimes import pytorch


def evaluate(inputs, outputs, params, threads):
    model, recipe = artifacts.load_model(inputs["model"])
    api = pytorch.api(recipe)
    dev = device.use("cpu" if device.is_int8(model) or api == "pt2e" else params["device"])  # INT8 kernels are CPU kernels
    test = data.load_split(inputs["test"])
    parent_logits = None
    if inputs.get("parent_logits"):
        parent_logits = files.load_tensors(inputs["parent_logits"], "parent logits")
    if api == "pt2e":
        with tempfile.TemporaryDirectory(prefix="inductor-") as cache, pt2.cache_dir(cache):
            metrics, logits = _evaluate_pt2e(model, test, parent_logits, inputs, params)
    else:
        metrics, logits = ev.evaluate(
            model,
            test,
            inputs["model"],
            batch_size=params["batch_size"],
            threads=params["threads"],
            parent_logits=parent_logits,
            device=dev,
        )
    metrics.update(quant_api=api)
    if parent_logits is None:  # the FP32 baseline
        n, k, classes = metrics["n_test"], round(metrics["top1"] * metrics["n_test"]), len(test["classes"])
        if stats.near_chance(k, n, classes):
            line = stats.near_chance_message(Path(inputs["model"]).parent.parent.name, metrics["top1"], n, classes)
            print(f"\n{'!' * 100}\nWARNING: {line}\n{'!' * 100}\n", file=sys.stderr)
            metrics["warning"] = line
    files.save_tensors(logits, outputs["logits"])
    files.write_json(metrics, outputs["metrics"])


def _evaluate_pt2e(model, test, parent_logits, inputs, params):
    """A PT2E graph runs as deployed, through torch.compile with freezing (its Q/DQ ops become INT8 kernels
    only then), at the data's size (its height/width are static). Compile seconds are recorded; latency is
    timed by ``benchmark_artifact`` like every other artifact."""
    th = params["threads"]
    torch.set_num_threads(th)
    data_size = int(test["x"].shape[-1])
    compiled, seconds = pt2.compile_model(model, torch.zeros(1, 3, data_size, data_size), th)
    logits = ev.predict(compiled, test, params["batch_size"])
    row = ev.metrics(
        "pytorch",
        logits,
        test,
        size_mb=measure.size_mb(inputs["model"]),
        params=models.count_params(model),
        threads=th,
        parent_logits=parent_logits,
    )
    row.update(compiled=pt2.SETTING, compile_s=round(seconds, 3))
    return row, logits
