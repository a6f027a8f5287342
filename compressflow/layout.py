"""What the workflow builds and where it lands: techniques, runtimes and artifact paths, in one table.

``rules/common.smk``, the library, the report and the benchmarks all read these names and paths
from here. Standard library only: Snakemake imports it while parsing, so ``snakemake -n`` stays
free of torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

RESULTS = "results"
ROOT_VARIANT = "fp32"  # the trained (or user-supplied) baseline every variant descends from

# ---------------------------------------------------------------- techniques


@dataclass(frozen=True)
class Technique:
    """One config ``technique``. Its name is also the rule that writes ``results/{model}/{variant}/model.pt``,
    that rule's script ``scripts/<name>.py`` and its step ``compressflow/steps/<name>.py:<name>``.
    Knobs and their defaults live only in ``config/schema.yaml``.
    """

    name: str
    stage: str  # rules/<stage>.smk
    quantized: bool = False  # a PyTorch INT8 model: no ONNX export (its float parent is deployed)
    api: str | None = (
        None  # quantized: which API builds it ("torch.ao-fx", "torch.ao-eager", "pt2e"); torch.ao ones get a layer_error table
    )
    trains: bool = False  # trains with a seed: ``repeats: N`` may build it N times
    before: tuple[str, ...] = ()  # the technique's other rules, which run before its main rule
    knobs_of: dict = None  # rule -> the knobs it receives when the technique's rules split them (else all)


TECHNIQUES = {
    t.name: t
    for t in (
        Technique("fuse", "fuse"),
        Technique("prune_l1", "prune", trains=True),
        Technique("prune_channels", "prune", trains=True),
        Technique("distill", "distill", trains=True),
        Technique("dynamic", "quantize", quantized=True, api="torch.ao-eager"),
        # Calibration gets only the knobs that change it: bias_correction reruns ptq, not ptq_calibrate.
        Technique(
            "ptq",
            "quantize",
            quantized=True,
            api="torch.ao-fx",
            before=("ptq_calibrate",),
            knobs_of={"ptq_calibrate": ("backend", "observer", "activation", "per_channel", "calib_size", "percentile")},
        ),
        Technique("qat", "quantize", quantized=True, api="torch.ao-fx", trains=True),
        Technique("mixed", "quantize", quantized=True, api="torch.ao-fx", before=("sensitivity",)),
        # The successors of the deprecated torch.ao FX path: torch.export graphs, INT8 only after torch.compile.
        Technique("ptq_pt2e", "quantize", quantized=True, api="pt2e"),
        Technique("qat_pt2e", "quantize", quantized=True, api="pt2e", trains=True),
        Technique("mixed_pt2e", "quantize", quantized=True, api="pt2e"),
    )
}
BASELINE = "train_baseline"  # the rule that makes the root variant (trains, or loads the user's checkpoint)
# Rules that run on the config's ``device`` (training, fine-tuning, QAT, KD, calibration, accuracy);
# every other rule, every INT8 conversion and every CPU latency measurement stays on the CPU.
DEVICE_RULES = (BASELINE, "prune_l1", "prune_channels", "distill", "qat", "ptq_calibrate", "evaluate")


def techniques(*, quantized: bool | None = None, trains: bool | None = None, api: str | None = None) -> list[str]:
    """Technique names, optionally only those that (do not) quantize or train, or that a given API builds."""
    return [
        n
        for n, t in TECHNIQUES.items()
        if (quantized is None or t.quantized == quantized) and (trains is None or t.trains == trains) and (api is None or t.api == api)
    ]


# ---------------------------------------------------------------- runtimes

PYTORCH = "pytorch"
ORT_RUNTIMES = ("onnxruntime", "onnxruntime-int8")
OV_RUNTIMES = ("openvino", "openvino-int8", "openvino-qdq")
TRT_RUNTIMES = ("tensorrt-fp16", "tensorrt-int8", "tensorrt-int8-calib")
# PyTorch 2: torch.compile (inductor, freezing) of model.pt, and an AOTInductor package (C++-loadable, no Python).
PT2_RUNTIMES = ("pytorch-compile", "pytorch-aoti")
# Runtimes the benchmark rule times on the CPU (TensorRT rows are timed by their own GPU jobs; the
# PyTorch 2 rows by their own evaluate job, which needs the compile anyway).
CPU_RUNTIMES = (PYTORCH, *ORT_RUNTIMES, *OV_RUNTIMES)
# What gets timed, in one place: every CPU runtime's artifact is timed by ``benchmark_artifact``, alone on
# the cores, and at batch 1 in alternating blocks with the artifact it is compared with (its report
# parent): the same variant in this runtime. A PyTorch row's parent is the parent variant's model.pt.
# That job is the only source of the report's latency columns; a new CPU runtime adds one entry here.
LATENCY_PARENT = {
    "onnxruntime": PYTORCH,
    "onnxruntime-int8": "onnxruntime",
    "openvino": PYTORCH,
    "openvino-int8": "openvino",
    "openvino-qdq": "openvino",
}
RUNTIMES = (*CPU_RUNTIMES, *PT2_RUNTIMES, *TRT_RUNTIMES)

# The file each runtime runs, relative to results/{model}/{variant}/. OpenVINO compiles the ORT QDQ model
# for openvino-qdq; an OpenVINO IR's weights sit beside it as model.bin.
ARTIFACTS = {
    PYTORCH: "model.pt",
    "onnxruntime": "onnx/model.onnx",
    "onnxruntime-int8": "onnxruntime-int8/model.onnx",
    "openvino": "openvino/model.xml",
    "openvino-int8": "openvino-int8/model.xml",
    "openvino-qdq": "onnxruntime-int8/model.onnx",
    "pytorch-compile": "model.pt",
    "pytorch-aoti": "pytorch-aoti/model.pt2",
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
