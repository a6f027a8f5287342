"""OpenVINO on CPU: the FP32 IR of the exported file, NNCF INT8, and rows that say which precision ran.

FP32 rows race the PyTorch artifact; INT8 rows (NNCF's IR, or the ONNX Runtime QDQ file compiled by
OpenVINO for ``openvino-qdq``) race the FP32 IR. The CPU plugin may compute in bf16 by default, so
each row records the precision it timed and both hints' latencies.
"""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path

import numpy as np
import torch

from compressflow import data
from compressflow.errors import CompressflowError

__all__ = [
    "convert",
    "save_ir",
    "compile_model",
    "precision_of",
    "runner",
    "predict",
    "quantize",
]


def convert(onnx_path, xml_path) -> dict:
    """FP32 IR: FP32 weights on disk (save_model would halve them to FP16 by default)."""
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    Path(xml_path).parent.mkdir(parents=True, exist_ok=True)
    save_ir(model, xml_path)
    return {"openvino": ov.__version__, "compress_to_fp16": False}


def save_ir(model, xml_path) -> None:
    """ov.save_model into a private temporary folder, then rename .bin and .xml into place (atomic per file)."""
    import shutil
    import tempfile

    import openvino as ov

    xml_path = Path(xml_path)
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{xml_path.stem}.", suffix=".tmp", dir=xml_path.parent))
    try:
        ov.save_model(model, str(tmpdir / xml_path.name), compress_to_fp16=False)
        os.replace(tmpdir / xml_path.with_suffix(".bin").name, xml_path.with_suffix(".bin"))
        os.replace(tmpdir / xml_path.name, xml_path)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


@functools.cache
def core():
    """The process's one ``openvino.Core``.

    OpenVINO's maintainers advise one Core per application (openvinotoolkit/openvino#27366). A Core per call
    left compiled models and infer requests alive after the Core that loaded their plugin was gone, and
    creating a second Core segfaults with some OpenVINO builds (openvinotoolkit/openvino#35338; ultralytics
    moved to one shared Core for the same crash, ultralytics/ultralytics#24224 and #25864). The test suite's
    interpreter died with SIGSEGV right after tests/test_runtimes.py while each call made its own Core
    (docs/segfault.md).
    """
    import openvino as ov

    return ov.Core()


@contextlib.contextmanager
def _nncf_uses_the_process_core():
    """NNCF makes an ``ov.Core()`` of its own for each model it compiles (nncf/openvino/engine.py, cpu_info.py):
    while it quantizes, ``openvino.Core()`` hands out the process's Core instead."""
    import openvino as ov

    shared, original = core(), ov.Core
    ov.Core = lambda *args, **kwargs: shared
    try:
        yield
    finally:
        ov.Core = original


def compile_model(path, threads: int, precision: str = "auto"):
    """Compile for CPU; ``precision`` 'f32' pins INFERENCE_PRECISION_HINT, 'auto' keeps the plugin's choice."""
    shared = core()
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
    if precision == "f32":
        config["INFERENCE_PRECISION_HINT"] = "f32"
    elif precision != "auto":
        raise CompressflowError(f"openvino inference_precision '{precision}' is unknown", "use f32 or auto")
    return shared.compile_model(shared.read_model(str(path)), "CPU", config)


def precision_of(compiled) -> str:
    """The element type the CPU plugin actually computes in (e.g. f32 or bf16)."""
    value = compiled.get_property("INFERENCE_PRECISION_HINT")
    return getattr(value, "get_type_name", lambda: str(value))()


def runner(compiled):
    request = compiled.create_infer_request()

    def run(x):
        return request.infer({0: x.numpy()})

    return run


def predict(compiled, split: dict, batch_size: int) -> torch.Tensor:
    request = compiled.create_infer_request()
    outs = []
    for x, _ in data.batches(split, batch_size):
        request.infer({0: x.numpy()})
        outs.append(torch.from_numpy(np.array(request.get_output_tensor(0).data)))
    return torch.cat(outs)


class _Stream:
    """The split's inputs one by one, read again on each pass (NNCF may iterate more than once)."""

    def __init__(self, split):
        self.split = split

    def __len__(self):
        return len(self.split["y"])

    def __iter__(self):
        return (x.numpy() for x, _ in data.batches(self.split, 1))


def quantize(
    xml_path,
    dst_xml,
    calib: dict,
    val: dict,
    *,
    preset: str = "performance",
    ignored_scope=(),
    accuracy_control: bool = False,
    max_drop: float = 0.01,
) -> dict:
    """NNCF post-training INT8 of the FP32 IR; with accuracy control, layers go back to FP32 until val top-1 is within max_drop."""
    import nncf

    model = core().read_model(str(xml_path))
    calib_ds = nncf.Dataset(_Stream(calib))
    scope = nncf.IgnoredScope(names=list(ignored_scope)) if ignored_scope else None
    kwargs = {
        "preset": {"performance": nncf.QuantizationPreset.PERFORMANCE, "mixed": nncf.QuantizationPreset.MIXED}[preset],
        "subset_size": int(len(calib["y"])),
    }
    if scope is not None:
        kwargs["ignored_scope"] = scope
    with _nncf_uses_the_process_core():
        try:
            if accuracy_control:
                val_items = [(x.numpy(), y.numpy()) for x, y in data.batches(val, 1)]

                def validate(compiled, items) -> float:
                    request = compiled.create_infer_request()
                    hits = 0
                    for x, y in items:
                        request.infer({0: x})
                        hits += int(np.argmax(request.get_output_tensor(0).data, 1)[0] == y[0])
                    return hits / max(len(val_items), 1)

                qmodel = nncf.quantize_with_accuracy_control(
                    model,
                    calib_ds,
                    nncf.Dataset(val_items, lambda item: item[0]),
                    validation_fn=validate,
                    max_drop=max_drop,
                    drop_type=nncf.DropType.ABSOLUTE,
                    **kwargs,
                )
            else:
                qmodel = nncf.quantize(model, calib_ds, **kwargs)
        except nncf.ValidationError as exc:
            raise CompressflowError(
                f"NNCF refused the OpenVINO INT8 settings ({' '.join(str(exc).split())[:200]})",
                "fix deploy.openvino.int8 (ignored_scope names must exist in the IR)",
            ) from exc
    Path(dst_xml).parent.mkdir(parents=True, exist_ok=True)
    save_ir(qmodel, dst_xml)
    fq = sum(1 for op in qmodel.get_ops() if op.get_type_name() == "FakeQuantize")
    return {
        "nncf": nncf.__version__,
        "preset": preset,
        "ignored_scope": list(ignored_scope),
        "accuracy_control": accuracy_control,
        "max_drop": max_drop,
        "fake_quantize_ops": fq,
        "n_calib": int(len(calib["y"])),
    }


# --- workflow steps ----------------------------------------------------------------------------------------------------
