"""Rule ``evaluate_onnxruntime``: accuracy, agreement and latency of an ONNX Runtime artifact."""

from __future__ import annotations

import torch

from compressflow import data, files, layout, models
from compressflow import evaluate as ev
from compressflow.measure import size_mb
from compressflow.runtimes import onnx, onnxruntime, pytorch


def evaluate_onnxruntime(inputs, outputs, params, threads):
    """FP32 rows race the PyTorch artifact; INT8 rows race the FP32 ONNX model."""
    torch.set_num_threads(params["threads"])
    test = data.load_split(inputs["test"])
    torch_model, torch_logits = pytorch.reference(inputs)
    sess = onnx.session(inputs["onnx"], params["threads"])
    logits = onnxruntime.predict(sess, test, params["batch_size"])
    if inputs.get("parent_onnx"):
        parent_fn = onnxruntime.runner(onnx.session(inputs["parent_onnx"], params["threads"]))
        parent_runtime = "onnxruntime"
    else:
        parent_fn, parent_runtime = pytorch.runner(torch_model, params["threads"]), layout.PYTORCH
    metrics = ev.metrics(
        params["runtime"],
        logits,
        test,
        own_fn=onnxruntime.runner(sess),
        parent_fn=parent_fn,
        size_mb=size_mb(inputs["onnx"]),
        params=models.count_params(torch_model),
        threads=params["threads"],
        latency=params["latency"],
        parent_logits=torch_logits,
    )
    metrics.update(parent_runtime=parent_runtime, precision="int8" if inputs.get("parent_onnx") else "fp32", providers=sess.get_providers())
    if inputs.get("quant_report"):
        metrics["quantization"] = files.read_json(inputs["quant_report"])
    files.write_json(metrics, outputs["metrics"])
