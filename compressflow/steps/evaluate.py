"""Rule ``evaluate``: accuracy and agreement with the parent of one PyTorch artifact (benchmark_artifact times it)."""

from __future__ import annotations

from compressflow import artifacts, data, files
from compressflow import evaluate as ev


def evaluate(inputs, outputs, params, threads):
    model, _ = artifacts.load_model(inputs["model"])
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
    )
    files.save_tensors(logits, outputs["logits"])
    files.write_json(metrics, outputs["metrics"])
