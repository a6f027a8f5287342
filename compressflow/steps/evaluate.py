"""Rule ``evaluate``: accuracy and agreement with the parent of one PyTorch artifact (benchmark_artifact times it)."""

from __future__ import annotations

import sys
from pathlib import Path

from compressflow import artifacts, data, device, files, stats
from compressflow import evaluate as ev


def evaluate(inputs, outputs, params, threads):
    model, _ = artifacts.load_model(inputs["model"])
    dev = device.use("cpu" if device.is_int8(model) else params["device"])  # INT8 kernels are CPU kernels
    test = data.load_split(inputs["test"])
    parent_logits = None
    if inputs.get("parent_logits"):
        parent_logits = files.load_tensors(inputs["parent_logits"], "parent logits")
    metrics, logits = ev.evaluate(
        model,
        test,
        inputs["model"],
        batch_size=params["batch_size"],
        threads=params["threads"],
        parent_logits=parent_logits,
        device=dev,
    )
    if parent_logits is None:  # the FP32 baseline
        n, k, classes = metrics["n_test"], round(metrics["top1"] * metrics["n_test"]), len(test["classes"])
        if stats.near_chance(k, n, classes):
            line = stats.near_chance_message(Path(inputs["model"]).parent.parent.name, metrics["top1"], n, classes)
            print(f"\n{'!' * 100}\nWARNING: {line}\n{'!' * 100}\n", file=sys.stderr)
            metrics["warning"] = line
    files.save_tensors(logits, outputs["logits"])
    files.write_json(metrics, outputs["metrics"])
