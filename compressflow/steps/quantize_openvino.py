"""Rule ``quantize_openvino``: OpenVINO INT8 with NNCF post-training quantization."""

from __future__ import annotations

import sys

from compressflow import data, files
from compressflow.runtimes import openvino


def quantize_openvino(inputs, outputs, params, threads):
    q = params["int8"]
    info = openvino.quantize(
        inputs["xml"],
        outputs["xml"],
        data.load_split(inputs["calib"]),
        data.load_split(inputs["val"]),
        preset=q["preset"],
        ignored_scope=q.get("ignored_scope", []),
        accuracy_control=q["accuracy_control"],
        max_drop=q["max_drop"],
    )
    print(f"NNCF INT8: {info}", file=sys.stderr)
    files.write_json(info, outputs["report"])
