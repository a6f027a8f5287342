"""Rule ``evaluate_onnxruntime``: accuracy and agreement of an ONNX Runtime artifact."""

from __future__ import annotations

import torch

from compressflow import data, files, layout, models
from compressflow import evaluate as ev
from compressflow.measure import size_mb
from compressflow.runtimes import onnx, onnxruntime, pytorch


def evaluate_onnxruntime(inputs, outputs, params, threads):
    """Accuracy and agreement; benchmark_artifact times FP32 rows against PyTorch, INT8 rows against the FP32 ONNX model."""
    torch.set_num_threads(params["threads"])
    test = data.load_split(inputs["test"])
    torch_model, torch_logits = pytorch.reference(inputs)
    sess = onnx.session(inputs["onnx"], params["threads"])
    logits = onnxruntime.predict(sess, test, params["batch_size"])
    parent_runtime = layout.LATENCY_PARENT[params["runtime"]]
    metrics = ev.metrics(
        params["runtime"],
        logits,
        test,
        size_mb=size_mb(inputs["onnx"]),
        params=models.count_params(torch_model),
        threads=params["threads"],
        parent_logits=torch_logits,
    )
    metrics.update(parent_runtime=parent_runtime, precision="int8" if inputs.get("parent_onnx") else "fp32", providers=sess.get_providers())
    if inputs.get("quant_report"):
        metrics["quantization"] = files.read_json(inputs["quant_report"])
    files.write_json(metrics, outputs["metrics"])
