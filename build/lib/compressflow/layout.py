"""What the workflow builds and where it lands: runtimes and artifact paths, in one table.

``rules/common.smk``, the library, the report and the benchmarks all read these names and paths
from here. Standard library only: Snakemake imports it while parsing, so ``snakemake -n`` stays
free of torch.
"""

from __future__ import annotations

from pathlib import PurePosixPath

RESULTS = "results"
ROOT_VARIANT = "fp32"  # the trained (or user-supplied) baseline every variant descends from

# ---------------------------------------------------------------- runtimes

PYTORCH = "pytorch"
ORT_RUNTIMES = ("onnxruntime", "onnxruntime-int8")
OV_RUNTIMES = ("openvino", "openvino-int8", "openvino-qdq")
TRT_RUNTIMES = ("tensorrt-fp16", "tensorrt-int8", "tensorrt-int8-calib")
# Runtimes the benchmark rule times on the CPU (TensorRT rows are timed by their own GPU jobs).
CPU_RUNTIMES = (PYTORCH, *ORT_RUNTIMES, *OV_RUNTIMES)
RUNTIMES = (*CPU_RUNTIMES, *TRT_RUNTIMES)

# The file each runtime runs, relative to results/{model}/{variant}/. OpenVINO compiles the ORT QDQ model
# for openvino-qdq; an OpenVINO IR's weights sit beside it as model.bin.
ARTIFACTS = {
    PYTORCH: "model.pt",
    "onnxruntime": "onnx/model.onnx",
    "onnxruntime-int8": "onnxruntime-int8/model.onnx",
    "openvino": "openvino/model.xml",
    "openvino-int8": "openvino-int8/model.xml",
    "openvino-qdq": "onnxruntime-int8/model.onnx",
    "tensorrt-fp16": "tensorrt-fp16/model.engine",
    "tensorrt-int8": "tensorrt-int8/model.engine",
    "tensorrt-int8-calib": "tensorrt-int8-calib/model.engine",
}

# ---------------------------------------------------------------- paths


def variant_dir(model: str, variant: str, results: str = RESULTS) -> str:
    return str(PurePosixPath(results) / model / variant)


def artifact(model: str, variant: str, runtime: str = PYTORCH, results: str = RESULTS) -> str:
    """Where the workflow writes the file ``runtime`` runs for one (model, variant)."""
    return f"{variant_dir(model, variant, results)}/{ARTIFACTS[runtime]}"


def weights_of(ir_path: str) -> str:
    """The weights file beside an OpenVINO IR (``model.xml`` -> ``model.bin``)."""
    return str(PurePosixPath(ir_path).with_suffix(".bin"))


def runtime_metrics(model: str, variant: str, runtime: str, results: str = RESULTS) -> str:
    return f"{variant_dir(model, variant, results)}/{runtime}/metrics.json"


def benchmark_json(model: str, variant: str, runtime: str, results: str = RESULTS) -> str:
    return f"{results}/benchmarks/{model}/{variant}/{runtime}.json"
