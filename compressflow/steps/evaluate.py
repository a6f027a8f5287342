"""Rule ``evaluate``: accuracy, agreement with the parent and latency of one PyTorch artifact."""

from __future__ import annotations

from compressflow import data, io
from compressflow import evaluate as ev


def evaluate(inputs, outputs, params, threads):
    model, _ = io.load_model(inputs["model"])
    test = data.load_split(inputs["test"])
    parent, parent_logits = None, None
    if inputs.get("parent_model"):
        parent, _ = io.load_model(inputs["parent_model"])
        parent_logits = io.load_tensors(inputs["parent_logits"], "parent logits")
    lat = params["latency"]
    metrics, logits = ev.evaluate(
        model,
        test,
        inputs["model"],
        batch_size=params["batch_size"],
        threads=params["threads"],
        latency_input=lat["input_size"],
        warmup=lat["warmup"],
        iters=lat["iters"],
        parent=parent,
        parent_logits=parent_logits,
    )
    io.save_tensors(logits, outputs["logits"])
    io.write_json(metrics, outputs["metrics"])
