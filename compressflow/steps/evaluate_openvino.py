"""Rule ``evaluate_openvino``: accuracy and agreement of an OpenVINO artifact, with the precision that ran."""

from __future__ import annotations

import sys

import torch

from compressflow import data, files, layout, measure, models
from compressflow import evaluate as ev
from compressflow.runtimes import openvino, pytorch


def evaluate_openvino(inputs, outputs, params, threads):
    """Records the precision the config asks for and what each hint computes in, so no row claims FP32 that ran bf16
    (``benchmark_artifact`` times the two hints against each other, alone on the cores)."""
    torch.set_num_threads(params["threads"])
    th = params["threads"]
    test = data.load_split(inputs["test"])
    torch_model, torch_logits = pytorch.reference(inputs)
    path = inputs["model"]
    chosen = params["precision"]
    compiled = {p: openvino.compile_model(path, th, p) for p in ("auto", "f32")}
    logits = openvino.predict(compiled[chosen], test, params["batch_size"])
    parent_runtime = layout.LATENCY_PARENT[params["runtime"]]
    on_disk = [path] + ([layout.weights_of(path)] if str(path).endswith(".xml") else [])
    metrics = ev.metrics(
        params["runtime"],
        logits,
        test,
        size_mb=measure.size_mb(*on_disk),
        params=models.count_params(torch_model),
        threads=th,
        parent_logits=torch_logits,
    )
    int8 = "int8+" if params["runtime"] != "openvino" else ""
    metrics.update(
        parent_runtime=parent_runtime,
        inference_precision_setting=chosen,
        precision=int8 + openvino.precision_of(compiled[chosen]),
        precision_default_hint=openvino.precision_of(compiled["auto"]),
        precision_f32_hint=openvino.precision_of(compiled["f32"]),
    )
    if inputs.get("quant_report"):
        metrics["quantization"] = files.read_json(inputs["quant_report"])
    print(
        f"{params['runtime']}: top1 {metrics['top1']:.4f} ({metrics['precision']}), "
        f"default hint computes in {metrics['precision_default_hint']} (benchmark_artifact times both hints)",
        file=sys.stderr,
    )
    files.write_json(metrics, outputs["metrics"])
