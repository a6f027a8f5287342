"""Rule ``evaluate``: accuracy, agreement with the parent and latency of one PyTorch artifact."""

from __future__ import annotations

import tempfile

import torch

from compressflow import artifacts, data, files, measure, models
from compressflow import evaluate as ev
from compressflow.runtimes import compile as pt2
from compressflow.runtimes import pytorch


def evaluate(inputs, outputs, params, threads):
    model, recipe = artifacts.load_model(inputs["model"])
    api = pytorch.api(recipe)
    test = data.load_split(inputs["test"])
    parent, parent_logits = None, None
    if inputs.get("parent_model"):
        parent, _ = artifacts.load_model(inputs["parent_model"])
        parent_logits = files.load_tensors(inputs["parent_logits"], "parent logits")
    lat = params["latency"]
    if api == "pt2e":
        with tempfile.TemporaryDirectory(prefix="inductor-") as cache, pt2.cache_dir(cache):
            metrics, logits = _evaluate_pt2e(model, test, parent, parent_logits, inputs, params)
    else:
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
    metrics.update(quant_api=api)
    files.save_tensors(logits, outputs["logits"])
    files.write_json(metrics, outputs["metrics"])


def _evaluate_pt2e(model, test, parent, parent_logits, inputs, params):
    """A PT2E graph runs as deployed, through torch.compile with freezing (its Q/DQ ops become INT8 kernels
    only then). Its height/width are static, so accuracy runs the graph built at the data's size and latency
    the same calibrated state rebuilt at the latency size; compile seconds are recorded apart from latency."""

    th, lat = params["threads"], params["latency"]
    size = lat["input_size"]
    data_size = int(test["x"].shape[-1])
    compiled, _ = pt2.compile_model(model, torch.zeros(1, 3, data_size, data_size), th)
    logits = ev.predict(compiled, test, params["batch_size"])
    timed = model if size == data_size else artifacts.load_model_at_size(inputs["model"], size)
    timed_compiled, seconds = pt2.compile_model(timed, torch.zeros(1, 3, size, size), th)
    row = ev.metrics(
        "pytorch",
        logits,
        test,
        own_fn=torch.no_grad()(timed_compiled),
        parent_fn=pytorch.runner(parent, th) if parent is not None else None,
        size_mb=measure.size_mb(inputs["model"]),
        params=models.count_params(model),
        threads=th,
        latency=lat,
        parent_logits=parent_logits,
    )
    row.update(compiled=pt2.SETTING, compile_s=round(seconds, 3))
    return row, logits
