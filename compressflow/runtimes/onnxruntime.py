"""ONNX Runtime on CPU: FP32 rows of the exported file and static INT8 in QDQ format.

FP32 rows race the PyTorch artifact of the same variant; INT8 rows race the FP32 ONNX model, both
timed in the same process (:func:`compressflow.evaluate.metrics`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from compressflow import data, files, sysinfo
from compressflow.errors import CompressflowError
from compressflow.runtimes import onnx

__all__ = [
    "VNNI_FLAGS",
    "has_vnni",
    "predict",
    "runner",
    "CalibrationReader",
    "quantize",
]

VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def has_vnni(isa: str | None = None) -> bool:
    """Whether the CPU has 8-bit dot-product instructions (VNNI/AMX); without them ORT needs reduce_range."""
    isa = sysinfo.cpu()["isa"] if isa is None else isa
    return any(f in isa.split() for f in VNNI_FLAGS)


def predict(sess, split: dict, batch_size: int) -> torch.Tensor:
    return torch.cat([onnx.run_onnx(sess, x) for x, _ in data.batches(split, batch_size)])


def runner(sess):
    name = sess.get_inputs()[0].name

    def run(x):
        return sess.run(None, {name: x.numpy()})

    return run


class CalibrationReader:
    """Feeds the calibration split to ORT's quantizer in the same normalisation as training."""

    def __init__(self, split: dict, input_name: str, batch_size: int = 16):
        self._split, self._batch_size = split, batch_size
        self._name = input_name
        self.rewind()

    def get_next(self):
        x = next(self._it, None)
        return None if x is None else {self._name: x}

    def rewind(self):
        self._it = (x.numpy() for x, _ in data.batches(self._split, self._batch_size))  # streamed, not held


def quantize(
    src,
    dst,
    calib: dict,
    *,
    calibrate_method: str = "MinMax",
    per_channel: bool = True,
    activation_type: str = "QUInt8",
    reduce_range="auto",
    symmetric_activations: bool = False,
    nodes_to_exclude=(),
    isa: str | None = None,
) -> dict:
    """Static INT8 in QDQ format: ``quant_pre_process`` then ``quantize_static`` over the calibration split."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if calibrate_method not in ("MinMax", "Entropy", "Percentile"):
        raise CompressflowError(f"calibrate_method '{calibrate_method}' is unknown", "use MinMax, Entropy or Percentile")
    if activation_type not in ("QUInt8", "QInt8"):
        raise CompressflowError(f"activation_type '{activation_type}' is unknown", "use QUInt8 or QInt8")
    vnni = has_vnni(isa)
    rr = (not vnni) if reduce_range == "auto" else bool(reduce_range)
    dst = Path(dst)
    pre = dst.with_name(dst.stem + ".pre.onnx")
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=False)
        reader = CalibrationReader(calib, onnx.INPUT_NAME)
        with files.atomic_path(dst) as tmp:
            quantize_static(
                str(pre),
                str(tmp),
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=per_channel,
                reduce_range=rr,
                activation_type=getattr(QuantType, activation_type),
                weight_type=QuantType.QInt8,
                calibrate_method=getattr(CalibrationMethod, calibrate_method),
                nodes_to_exclude=list(nodes_to_exclude or []),
                extra_options={"ActivationSymmetric": bool(symmetric_activations), "WeightSymmetric": True},
            )
    finally:
        pre.unlink(missing_ok=True)
        for leftover in dst.parent.glob("*.onnx.data"):
            leftover.unlink()
    return {
        "format": "QDQ",
        "calibrate_method": calibrate_method,
        "per_channel": per_channel,
        "activation_type": activation_type,
        "weight_type": "QInt8",
        "reduce_range": rr,
        "reduce_range_setting": reduce_range,
        "cpu_has_vnni": vnni,
        "symmetric_activations": bool(symmetric_activations),
        "nodes_to_exclude": list(nodes_to_exclude or []),
        "n_calib": int(len(calib["y"])),
    }


# --- workflow steps ----------------------------------------------------------------------------------------------------
