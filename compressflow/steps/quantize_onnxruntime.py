"""Rule ``quantize_onnxruntime``: ONNX Runtime static INT8 (QDQ) from the FP32 ONNX model."""

from __future__ import annotations

import sys

from compressflow import data, files
from compressflow.runtimes import onnxruntime


def quantize_onnxruntime(inputs, outputs, params, threads):
    q = params["int8"]
    info = onnxruntime.quantize(
        inputs["onnx"],
        outputs["onnx"],
        data.load_split(inputs["calib"]),
        calibrate_method=q["calibrate_method"],
        per_channel=q["per_channel"],
        activation_type=q["activation_type"],
        reduce_range=q["reduce_range"],
        nodes_to_exclude=q.get("nodes_to_exclude", []),
    )
    print(f"ORT static INT8 QDQ: {info}", file=sys.stderr)
    files.write_json(info, outputs["report"])
