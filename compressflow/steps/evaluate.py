"""Rule ``evaluate``: accuracy, agreement with the parent and latency of one PyTorch artifact."""

from __future__ import annotations

from compressflow import artifacts, data, device, files
from compressflow import evaluate as ev


def evaluate(inputs, outputs, params, threads):
    model, _ = artifacts.load_model(inputs["model"])
    dev = device.use("cpu" if device.is_int8(model) else params["device"])  # INT8 kernels are CPU kernels
    test = data.load_split(inputs["test"])
    parent, parent_logits = None, None
    if inputs.get("parent_model"):
        parent, _ = artifacts.load_model(inputs["parent_model"])
        parent_logits = files.load_tensors(inputs["parent_logits"], "parent logits")
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
        device=dev,
    )
    files.save_tensors(logits, outputs["logits"])
    files.write_json(metrics, outputs["metrics"])
