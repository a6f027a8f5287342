"""Rule ``build_trt_engine``: a TensorRT engine (FP16 or INT8) on an NVIDIA GPU, or a skipped record without one."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from compressflow import data, files
from compressflow.runtimes import onnxruntime, tensorrt


def build_trt_engine(inputs, outputs, params, threads):
    """Build one engine; where TensorRT cannot run (mode auto), write empty placeholders and say why in build.json."""
    precision, mode, t = params["precision"], params["mode"], params["tensorrt"]
    reason = tensorrt.unavailable()
    if reason is None and precision == "int8-calib" and not tensorrt.has_implicit_calibrator():
        reason = (
            f"TensorRT {tensorrt.version()} has no IInt8EntropyCalibrator2 (removed after 10.x); the explicit Q/DQ engine is tensorrt-int8"
        )
        mode = "auto"  # a missing legacy API is not a missing GPU
    onnx_path = inputs["onnx"]
    if precision == "int8":
        # TensorRT takes signed, symmetric Q/DQ only; this model is built for it (and is useful without a GPU too).
        qinfo = onnxruntime.quantize(
            inputs["onnx"],
            outputs["qdq_onnx"],
            data.load_split(inputs["calib"]),
            calibrate_method=t["calibrate_method"],
            per_channel=True,
            activation_type="QInt8",
            reduce_range=False,
            symmetric_activations=True,
        )
        onnx_path = outputs["qdq_onnx"]
    if reason is not None:
        tensorrt.skip_or_fail(mode, reason, f"{precision} engine")
        for key in ("engine", "timing_cache", "build_log", "calib_cache"):
            if key in outputs:
                with files.atomic_path(outputs[key]) as tmp:
                    tmp.write_bytes(b"")
        files.write_json({"skipped": reason, "precision": precision}, outputs["build"])
        return
    info = tensorrt.build(
        onnx_path,
        outputs["engine"],
        precision=precision,
        batch=t,
        data_size=params["data_size"],
        latency_size=params["latency"]["input_size"],
        timing_cache=outputs["timing_cache"],
        build_log=outputs["build_log"],
        calib=data.load_split(inputs["calib"]) if precision == "int8-calib" else None,
        calib_cache=outputs.get("calib_cache"),
    )
    if precision == "int8":
        info["quantization"] = qinfo
    if "calib_cache" in outputs and not Path(outputs["calib_cache"]).exists():
        with files.atomic_path(outputs["calib_cache"]) as tmp:
            tmp.write_bytes(b"")
    info["gpu"] = torch.cuda.get_device_name(0)
    print(f"TensorRT {precision}: {info}", file=sys.stderr)
    files.write_json(info, outputs["build"])
