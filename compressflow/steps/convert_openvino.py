"""Rule ``convert_openvino``: OpenVINO IR from the ONNX model."""

from __future__ import annotations

import sys

from compressflow.runtimes import openvino


def convert_openvino(inputs, outputs, params, threads):
    info = openvino.convert(inputs["onnx"], outputs["xml"])
    print(f"OpenVINO IR: {info}", file=sys.stderr)
