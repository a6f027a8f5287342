"""Rule ``evaluate``: accuracy, agreement with the parent and latency of one PyTorch artifact."""

from __future__ import annotations

import tempfile

import torch

from compressflow import artifacts, data, files
from compressflow import evaluate as ev
from compressflow.runtimes import compile as pt2
from compressflow.runtimes import pytorch


def evaluate(inputs, outputs, params, threads):
    model, recipe = artifacts.load_model(inputs["model"])
    api = pytorch.api(recipe)
    if api != "pt2e":
        return _evaluate(model, api, inputs, outputs, params, {})
    # A PT2E graph runs as deployed, through torch.compile with freezing (its Q/DQ ops become INT8 kernels
    # only then); compile seconds are recorded apart from latency. Inductor's cache lives in a tmp dir.
    with tempfile.TemporaryDirectory(prefix="inductor-") as cache, pt2.cache_dir(cache):
        size = params["latency"]["input_size"]
        model, seconds = pt2.compile_model(model, torch.zeros(1, 3, size, size), params["threads"])
        return _evaluate(model, api, inputs, outputs, params, {"compiled": pt2.SETTING, "compile_s": round(seconds, 3)})


def _evaluate(model, api, inputs, outputs, params, compiled):
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
    )
    metrics.update(quant_api=api, **compiled)
    files.save_tensors(logits, outputs["logits"])
    files.write_json(metrics, outputs["metrics"])
