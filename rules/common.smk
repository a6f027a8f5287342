import json
import os
import re
import sys
from pathlib import Path

# Scripts import the compressflow package from this repository, in the pip venv and in
# every conda env alike (each job's Python inherits this variable).
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        p for p in (workflow.basedir, os.environ.get("PYTHONPATH")) if p
    )
)
sys.path.insert(0, workflow.basedir)

from compressflow import config as cfcheck
from compressflow import hostcheck, layout, preprocess, repeats, verify
from compressflow.errors import CompressflowError

SCHEMA = os.path.join(workflow.basedir, "config", "schema.yaml")
try:
    # Also settles integers: 1.0 becomes 1 before any param sees it.
    cfcheck.check_schema(config, SCHEMA)
    validate(
        config, SCHEMA
    )  # fills in the schema's defaults; cannot fail after the check
    # Every sweep point becomes an ordinary variant (compressflow/sweeps.py).
    SWEEPS = cfcheck.expand_sweeps(config, SCHEMA, lambda c: validate(c, SCHEMA))
    DATASET_MANIFEST = cfcheck.check(config, ".")
except CompressflowError as _exc:
    sys.exit(f"compressflow config error: {_exc}")

if workflow.is_main_process and workflow.resource_settings.cores == 0:
    sys.exit(
        "compressflow config error: --cores 0 leaves no core to run any job (Snakemake would wait forever); fix: pass --cores N with N >= 1, or --cores all"
    )


MODELS = list(config["models"])
# A variant with repeats: N adds N - 1 copies named <name>@seed<seed> (compressflow/repeats.py).
VARIANTS, REPEATS = repeats.expand(config["variants"] or {}, config["seed"])
ROOT = layout.ROOT_VARIANT


def alternation(names):
    """A regex matching exactly these names (and nothing when there are none)."""
    return "|".join(re.escape(n) for n in names) if names else "(?!)"


def canonical(obj):
    """Dicts with sorted keys, recursively: params then compare equal however the YAML orders keys."""
    if isinstance(obj, dict):
        return {k: canonical(obj[k]) for k in sorted(obj)}
    if isinstance(obj, list):
        return [canonical(v) for v in obj]
    return obj


def variants_of(technique):
    return [name for name, spec in VARIANTS.items() if spec["technique"] == technique]


def models_of(variant):
    if variant == ROOT:
        return MODELS
    return VARIANTS[variant].get("models", MODELS)


def parent_of(variant):
    return VARIANTS[variant]["from"]


def knobs(wildcards):
    """The variant's technique knobs: everything in its config entry but from/technique/models/repeats."""
    spec = VARIANTS[wildcards.variant]
    return canonical(
        {
            k: v
            for k, v in spec.items()
            if k not in ("from", "technique", "models", "repeats")
        }
    )


def seed_of(wildcards):
    """The training seed of a variant: the config seed, or its repeat's own seed."""
    return REPEATS.get(wildcards.variant, (None, config["seed"]))[1]


def repeat_info(variant):
    """For the report: which repeated variant this artifact is a seed of, and the seed ({} if not repeated)."""
    if variant not in REPEATS:
        return {}
    base, seed = REPEATS[variant]
    return {"repeat_of": base, "seed": seed}


def parent_model(wildcards):
    return f"results/{wildcards.model}/{parent_of(wildcards.variant)}/model.pt"


def built_variants():
    """(model, variant) for every artifact the config asks for, the baseline included."""
    return [(m, v) for v in [ROOT, *sorted(VARIANTS)] for m in models_of(v)]


# The square side of the images the models see (dataset.preprocess crop, or its square resize).
DATA_SIZE = preprocess.model_size(config["dataset"]["preprocess"])


def data_params():
    """prepare_data's params: what the split bytes depend on, the image tree's manifest digest included.

    Knobs that change no byte are not params, so changing them reruns nothing: ``workers``, and
    ``max_image_pixels`` (a limit the parse-time scan enforces; the job reads it from the config). The
    size is the one the models see: under a preset with a crop, ``dataset.input_size`` plays no part.
    """
    ds = {
        k: v
        for k, v in config["dataset"].items()
        if k not in ("max_image_pixels", "workers")
    }
    ds["input_size"] = DATA_SIZE
    params = {"dataset": canonical(ds), "seed": config["seed"]}
    if DATASET_MANIFEST is not None:
        params["manifest"] = DATASET_MANIFEST
    return params


def train_params(model):
    """A model's ``train`` knobs as a param: ``amp`` only where it can act (it is ignored on the CPU)."""
    train = dict(config["models"][model]["train"])
    if config["device"] == "cpu":
        train["amp"] = False
    return canonical(train)


def model_params(model):
    """A model's config as train_baseline's param (with :func:`train_params`). A checkpoint counts by its content:
    other weights under the same path rerun what depends on them, whatever the file's mtime (``cp -p``, ``rsync -a``).
    """
    spec = {**config["models"][model], "train": train_params(model)}
    if spec.get("checkpoint"):
        spec["checkpoint_sha256"] = verify.sha256(spec["checkpoint"])
    return canonical(spec)


if config["device"] == "cpu" and any(
    m["train"].get("amp") for m in config["models"].values()
):
    print(
        "compressflow: train.amp is ignored with device: cpu (mixed precision runs on CUDA only)",
        file=sys.stderr,
    )


_DATA_UNCHANGED = []


def _data_unchanged():
    """Whether the splits on disk were made with exactly the params prepare_data has now (code digest included)."""
    if not _DATA_UNCHANGED:
        try:
            recorded = json.loads(Path("results/data/provenance.json").read_text())[
                "params"
            ]
        except (OSError, ValueError, KeyError, TypeError):
            recorded = None
        current = json.loads(
            json.dumps(
                dict(rules.prepare_data.params.items()), sort_keys=True, default=str
            )
        )
        _DATA_UNCHANGED.append(recorded == current)
    return _DATA_UNCHANGED[0]


def split(name):
    """A data split as a job input: ``ancient`` while the splits on disk match prepare_data's params.

    The splits are a function of those params (clean runs are byte-identical), so then rebuilding a
    deleted or forced split leaves its consumers alone instead of retraining everything; any change to
    the params (config, seed, images, the data code's digest) reruns every consumer. An input
    function, so it sees the params after add_code_digests.
    """
    path = getattr(rules.prepare_data.output, name)
    return lambda wildcards: ancient(path) if _data_unchanged() else path


def package_digest():
    # standard library only: no torch at parse time; cached while no site-packages folder changes
    from compressflow.codedigest import packages_digest

    return packages_digest(os.path.join(".snakemake", "compressflow-packages.json"))


def technique_of(variant):
    return "train" if variant == ROOT else VARIANTS[variant]["technique"]


def checkpoint_of(wildcards):
    ckpt = config["models"][wildcards.model].get("checkpoint")
    return {"checkpoint": ckpt} if ckpt else {}


# Rules that write a variant's own artifact: the technique's rules from layout.TECHNIQUES (evaluate adds metrics and logits).
def producers(technique):
    if technique == "train":
        return [layout.BASELINE]
    t = layout.TECHNIQUES[technique]
    return [*t.before, t.name]


# Rules behind each deploy runtime's row, after export_onnx.
RUNTIME_PRODUCERS = {
    "onnxruntime": ["evaluate_onnxruntime"],
    "onnxruntime-int8": ["quantize_onnxruntime", "evaluate_onnxruntime"],
    "openvino": ["convert_openvino", "evaluate_openvino"],
    "openvino-int8": ["convert_openvino", "quantize_openvino", "evaluate_openvino"],
    "openvino-qdq": ["convert_openvino", "quantize_onnxruntime", "evaluate_openvino"],
    "pytorch-compile": ["evaluate_compile"],
    "pytorch-aoti": ["package_aoti", "evaluate_aoti"],
    "tensorrt-fp16": ["build_trt_fp16", "evaluate_tensorrt"],
    "tensorrt-int8": ["build_trt_int8", "evaluate_tensorrt"],
    "tensorrt-int8-calib": ["build_trt_int8_calib", "evaluate_tensorrt"],
}


def _outputs(rule_names, **wildcards):
    return [
        str(f).format(**wildcards)
        for name in rule_names
        for f in getattr(rules, name).output
    ]


def all_artifacts():
    """Every file a job writes for this config, so that rule all rebuilds a deleted artifact, not only the reports."""
    out = _outputs(["prepare_data"])
    for m, v in built_variants():
        out += _outputs([*producers(technique_of(v)), "evaluate"], model=m, variant=v)
    for e in deploy_entries():
        if e.get("skipped"):
            continue
        names = [*ONNX_FIRST[e["runtime"]], *RUNTIME_PRODUCERS[e["runtime"]]]
        out += _outputs(
            names, model=e["model"], variant=e["variant"], runtime=e["runtime"]
        )
    for m, v in layer_error_tables():
        out += _outputs(["layer_error"], model=m, variant=v)
    for m in sensitivity_models():
        out += _outputs(["sensitivity"], model=m)
    for e in benchmark_entries():
        out += _outputs(["benchmark_artifact"], **e)
    return sorted(set(out))


def parent_outputs(wildcards):
    """The parent's model and test logits, so agreement and speed-up compare like with like."""
    if wildcards.variant == ROOT:
        return {}
    parent = parent_of(wildcards.variant)
    return {
        "parent_model": f"results/{wildcards.model}/{parent}/model.pt",
        "parent_logits": f"results/{wildcards.model}/{parent}/test_logits.pt",
    }


# --- quantize helpers (rules/quantize.smk) ---
# Quantization family: dynamic INT8, static PTQ (calibrate -> convert), QAT, sensitivity, mixed precision.
# Each rule receives only the knobs that change its own output, so e.g. changing a PTQ variant's
# bias_correction reruns ptq (and its evaluation) but never its calibration.

QUANT_TECHNIQUES = layout.techniques(quantized=True)
# PT2E graphs (torchao) have no per-module torch.ao layers for layer_error to compare.
LAYER_ERROR_TECHNIQUES = [
    t for t in QUANT_TECHNIQUES if layout.TECHNIQUES[t].api != "pt2e"
]
PT2E_TECHNIQUES = layout.techniques(api="pt2e")
CALIB_KNOBS = layout.TECHNIQUES["ptq"].knobs_of["ptq_calibrate"]


def quantized_variants():
    return [v for t in QUANT_TECHNIQUES for v in variants_of(t)]


def layer_error_tables():
    """(model, variant) of every quantized artifact, each with a results/{model}/{variant}/layer_error.csv.

    Sorted, so make_report's params do not depend on the order of variants in the YAML.
    """
    return sorted(
        (m, v)
        for t in LAYER_ERROR_TECHNIQUES
        for v in variants_of(t)
        for m in models_of(v)
    )


def sensitivity_models():
    """Models with a sensitivity table: those a mixed-precision variant is built for."""
    return sorted({m for v in variants_of("mixed") for m in models_of(v)})


def quantize_targets():
    """Side outputs no metrics.json depends on: layer errors per quantized variant, sensitivity per model."""
    out = [f"results/{m}/{v}/layer_error.csv" for m, v in layer_error_tables()]
    out += [f"results/{m}/sensitivity/sensitivity.csv" for m in sensitivity_models()]
    return out


def calib_knobs(wildcards):
    return {k: v for k, v in knobs(wildcards).items() if k in CALIB_KNOBS}


# --- export helpers (rules/export.smk) ---
# Deployment: which (model, variant) pairs leave PyTorch, and the ONNX file every runtime starts from.
DEPLOY = config["deploy"]
# YAML 1.1 reads a bare `mode: off` as false.
DEPLOY["tensorrt"]["mode"] = {True: "on", False: "off"}.get(
    DEPLOY["tensorrt"]["mode"], DEPLOY["tensorrt"]["mode"]
)
# torch.ao quantized modules have no ONNX export; their float parents are deployed instead.
QUANTIZED_TECHNIQUES = layout.techniques(quantized=True)


def _check_deploy_variants():
    for v in DEPLOY["variants"]:
        if v != ROOT and v not in VARIANTS:
            sys.exit(
                f"compressflow config error: deploy.variants names '{v}', which is not a variant; fix: use {ROOT} or one of: {', '.join(sorted(VARIANTS))}"
            )
        if technique_of(v) in QUANTIZED_TECHNIQUES:
            sys.exit(
                f"compressflow config error: deploy.variants names '{v}', a quantized PyTorch model (no ONNX export); fix: deploy its float parent '{parent_of(v)}', whose runtime INT8 rows quantize it"
            )
    return list(DEPLOY["variants"])


DEPLOY_VARIANTS = _check_deploy_variants()


def deploy_runtimes():
    """(runtime, technique, parent runtime) for every runtime row the deploy section asks for."""
    ort, ov, trt = DEPLOY["onnxruntime"], DEPLOY["openvino"], DEPLOY["tensorrt"]
    rows = []
    if COMPILE_VARIANTS:
        rows.append(("pytorch-compile", "torch_compile", "pytorch"))
    if AOTI_VARIANTS:
        rows.append(("pytorch-aoti", "aoti_package", "pytorch"))
    if ort["enabled"]:
        rows.append(("onnxruntime", "onnx_export", "pytorch"))
        if ort["int8"]["enabled"]:
            rows.append(("onnxruntime-int8", "ort_static_int8", "onnxruntime"))
    if ov["enabled"]:
        rows.append(("openvino", "openvino_ir", "pytorch"))
        if ov["int8"]["enabled"]:
            rows.append(("openvino-int8", "nncf_ptq", "openvino"))
        if ov["qdq"] and ort["enabled"] and ort["int8"]["enabled"]:
            rows.append(("openvino-qdq", "ort_static_int8", "openvino"))
    if trt["mode"] != "off":
        if trt["fp16"]:
            rows.append(("tensorrt-fp16", "tensorrt_fp16", "pytorch-cuda"))
        int8_parent = "tensorrt-fp16" if trt["fp16"] else "pytorch-cuda"
        if trt["int8"]:
            rows.append(("tensorrt-int8", "tensorrt_int8_qdq", int8_parent))
        if trt["int8_calibrator"]:
            rows.append(("tensorrt-int8-calib", "tensorrt_int8_calib", int8_parent))
    return rows


PT2 = DEPLOY["pytorch"]
PT2_RUNTIMES = list(layout.PT2_RUNTIMES)


def _pt2_variants(key, allowed):
    """deploy.pytorch.<key>: true = every variant in ``allowed``, false = none, a list = those (checked)."""
    chosen = PT2[key]
    if chosen is True or chosen is False:
        return list(allowed) if chosen else []
    for v in chosen:
        if v not in allowed:
            which = (
                "the deployed variants (deploy.variants)"
                if key == "compile"
                else "the deployed variants (deploy.variants) and the PT2E INT8 ones"
            )
            fix = (
                f"use true, false or some of: {', '.join(allowed)}"
                if allowed
                else f"add '{v}' to deploy.variants first, or set {key}: false"
            )
            sys.exit(
                f"compressflow config error: deploy.pytorch.{key} names '{v}', which is not one of {which}; fix: {fix}"
            )
    return [v for v in allowed if v in chosen]


PT2E_VARIANTS = [v for t in PT2E_TECHNIQUES for v in variants_of(t)]
# Variants with a pytorch-compile row (deployed float ones) and with a pytorch-aoti row (those and PT2E INT8 ones).
COMPILE_VARIANTS = _pt2_variants("compile", DEPLOY_VARIANTS)
AOTI_VARIANTS = _pt2_variants("aoti", DEPLOY_VARIANTS + PT2E_VARIANTS)
PT2_ROW_VARIANTS = {"pytorch-compile": COMPILE_VARIANTS, "pytorch-aoti": AOTI_VARIANTS}
# Which runtimes start from the ONNX export (the PyTorch 2 ones start from model.pt).
ONNX_FIRST = {
    r: ([] if r in PT2_RUNTIMES else ["export_onnx"]) for r in RUNTIME_PRODUCERS
}


def pt2e_deploy_entries():
    """PT2E INT8 variants leave Python as AOTInductor packages; their parent row is their own compiled pytorch row."""
    return [
        {
            "model": m,
            "variant": v,
            "runtime": "pytorch-aoti",
            "parent": v,
            "technique": "aoti_package",
            "metrics_path": f"results/{m}/{v}/pytorch-aoti/metrics.json",
        }
        for v in PT2E_VARIANTS
        if v in AOTI_VARIANTS
        for m in models_of(v)
    ]


TRT_DECISION = os.path.join(".snakemake", "compressflow-tensorrt-auto.json")


def trt_skipped():
    """With deploy.tensorrt.mode auto, why TensorRT is left out of the DAG (None: its jobs run).

    Decided once, by the Snakemake process that parses the workflow and plans the jobs (the login
    node under SLURM), and recorded in .snakemake/ so that jobs re-parsing on other hosts (remote
    executors) see the same DAG. Where that host has no GPU but the compute nodes do, set mode: on.
    No job runs for a skipped runtime; make_report still writes its row, with the reason in `note`.
    """
    if TRT["mode"] != "auto":
        return None
    if not _TRT_SKIP:
        reason = hostcheck.tensorrt_skip_reason()
        if not workflow.is_main_process and os.path.exists(TRT_DECISION):
            reason = json.loads(Path(TRT_DECISION).read_text())["skipped"]
        elif workflow.is_main_process:
            os.makedirs(".snakemake", exist_ok=True)
            Path(TRT_DECISION).write_text(json.dumps({"skipped": reason}) + "\n")
        _TRT_SKIP.append(reason)
    return _TRT_SKIP[0]


_TRT_SKIP = []


def deploy_entries():
    """One report row per (model, deployed variant, runtime): the dicts make_report takes.

    A TensorRT row that ``trt_skipped`` leaves out of the DAG has ``skipped`` (the reason) and no metrics file.
    """
    return pt2e_deploy_entries() + [
        {
            "model": m,
            "variant": v,
            "runtime": r,
            "parent": v if p == "pytorch" else f"{v} [{p}]",
            "technique": t,
            "metrics_path": f"results/{m}/{v}/{r}/metrics.json",
            **(
                {
                    "skipped": f"{trt_skipped()} on the host that planned the jobs (deploy.tensorrt.mode: auto)"
                }
                if r in TRT_RUNTIMES and trt_skipped()
                else {}
            ),
        }
        for v in DEPLOY_VARIANTS
        for m in models_of(v)
        if m in DEPLOY.get("models", MODELS)
        for r, t, p in deploy_runtimes()
        if v
        in PT2_ROW_VARIANTS.get(
            r, [v]
        )  # the PyTorch 2 rows only for the variants listed
    ]


def torch_artifact(wildcards):
    """The PyTorch model and test logits of the same variant: parameter count and agreement."""
    return {
        "torch_model": f"results/{wildcards.model}/{wildcards.variant}/model.pt",
        "torch_logits": f"results/{wildcards.model}/{wildcards.variant}/test_logits.pt",
    }


# --- deploy helpers (rules/deploy.smk) ---
# CPU runtimes: ONNX Runtime (FP32, static INT8 QDQ) and OpenVINO (FP32 IR, NNCF INT8, the ORT QDQ model).
ORT_RUNTIMES = list(layout.ORT_RUNTIMES)
OV_RUNTIMES = list(layout.OV_RUNTIMES)


def accuracy_params():
    """What an accuracy-only evaluate job depends on. Such a job times nothing (benchmark_artifact does), so it
    reserves one core and runs beside others; it still uses evaluate.threads threads, because a float model's
    logits change in their last bits with the thread count (MobileNetV2: up to 5.7e-6 between 1 and 2 threads)
    and the same config must give the same bytes on any machine."""
    return {
        "batch_size": config["evaluate"]["batch_size"],
        "threads": config["evaluate"]["threads"],
        "seed": config["seed"],
    }


def timing_params():
    return {
        "batch_size": config["evaluate"]["batch_size"],
        "threads": config["evaluate"]["threads"],
        "latency": canonical(config["evaluate"]["latency"]),
        "seed": config["seed"],
    }


def ort_eval_inputs(w):
    base = f"results/{w.model}/{w.variant}"
    if w.runtime == "onnxruntime":
        return {"onnx": f"{base}/onnx/model.onnx"}
    return {
        "onnx": f"{base}/onnxruntime-int8/model.onnx",
        "parent_onnx": f"{base}/onnx/model.onnx",
        "quant_report": f"{base}/onnxruntime-int8/quantize.json",
    }


def ov_eval_inputs(w):
    base = f"results/{w.model}/{w.variant}"
    if w.runtime == "openvino":
        return {
            "model": f"{base}/openvino/model.xml",
            "weights": f"{base}/openvino/model.bin",
        }
    parent = {
        "parent_ir": f"{base}/openvino/model.xml",
        "parent_weights": f"{base}/openvino/model.bin",
    }
    if w.runtime == "openvino-int8":
        return {
            "model": f"{base}/openvino-int8/model.xml",
            "weights": f"{base}/openvino-int8/model.bin",
            "quant_report": f"{base}/openvino-int8/quantize.json",
            **parent,
        }
    return {
        "model": f"{base}/onnxruntime-int8/model.onnx",
        "quant_report": f"{base}/onnxruntime-int8/quantize.json",
        **parent,
    }


# --- trt helpers (rules/trt.smk) ---
# TensorRT engines on an NVIDIA GPU. deploy.tensorrt.mode: off leaves these out of the DAG; auto runs them
# everywhere and writes "skipped" metrics (null numbers) where there is no GPU or no tensorrt module; on fails there.
TRT = DEPLOY["tensorrt"]
TRT_RUNTIMES = list(layout.TRT_RUNTIMES)


def trt_build_params(precision):
    return {
        "precision": precision,
        "mode": TRT["mode"],
        "tensorrt": canonical(TRT),
        "data_size": DATA_SIZE,
        "latency": canonical(config["evaluate"]["latency"]),
        "seed": config["seed"],
    }


def trt_eval_inputs(w):
    base = f"results/{w.model}/{w.variant}"
    inputs = {
        "engine": f"{base}/{w.runtime}/model.engine",
        "build": f"{base}/{w.runtime}/build.json",
    }
    if w.runtime != "tensorrt-fp16" and TRT["fp16"]:
        inputs["parent_engine"] = f"{base}/tensorrt-fp16/model.engine"
        inputs["parent_build"] = f"{base}/tensorrt-fp16/build.json"
    return inputs


# --- benchmark helpers (rules/benchmark.smk) ---
# One speed job per (model, variant, runtime): every built PyTorch artifact, plus the CPU deploy runtimes.
BENCHMARK_RUNTIMES = list(layout.CPU_RUNTIMES)
BENCHMARK_ARTIFACTS = {r: layout.ARTIFACTS[r] for r in BENCHMARK_RUNTIMES}


def benchmark_entries():
    """(model, variant, runtime, json) for every artifact the benchmark rule times."""
    rows = [(m, v, "pytorch") for m, v in built_variants()]
    rows += [
        (e["model"], e["variant"], e["runtime"])
        for e in deploy_entries()
        if e["runtime"] in BENCHMARK_ARTIFACTS
    ]
    return [
        {
            "model": m,
            "variant": v,
            "runtime": r,
            "json": f"results/benchmarks/{m}/{v}/{r}.json",
        }
        for m, v, r in rows
    ]


def latency_parent(w):
    """(runtime, artifact) the batch-1 latency is compared with in the same job (layout.LATENCY_PARENT), or None."""
    if w.runtime == layout.PYTORCH:
        if w.variant == ROOT:
            return None
        return layout.PYTORCH, layout.artifact(w.model, parent_of(w.variant))
    runtime = layout.LATENCY_PARENT[w.runtime]
    return runtime, layout.artifact(w.model, w.variant, runtime)


def benchmark_inputs(w):
    base = f"results/{w.model}/{w.variant}"
    inputs = {
        "artifact": f"{base}/{BENCHMARK_ARTIFACTS[w.runtime]}",
        "torch_model": f"{base}/model.pt",
    }
    parent = latency_parent(w)
    if parent:
        inputs["parent_artifact"] = parent[1]
    for key in ("artifact", "parent_artifact"):
        if inputs.get(key, "").endswith(".xml"):
            inputs[key.replace("artifact", "weights")] = layout.weights_of(inputs[key])
    return inputs


def benchmark_parent_runtime(w):
    parent = latency_parent(w)
    return parent[0] if parent else None


def benchmark_env(w):
    """No one env holds torch, onnxruntime and openvino: pick the runtime's own (each has torch for MACs)."""
    if w.runtime in ORT_RUNTIMES:
        return "../envs/onnx.yaml"
    if w.runtime in OV_RUNTIMES:
        return "../envs/openvino.yaml"
    return "../envs/torch.yaml"


wildcard_constraints:
    model=alternation(MODELS),


# --- device (Snakefile, after every include) ---
# The rules that train, calibrate or measure accuracy (layout.DEVICE_RULES) get param `device` (the
# config value: changing it reruns them) and, with `device: cuda`, one GPU on a cluster (resource
# `gpu`, which the slurm executor turns into --gpus=1) unless the profile already gives them `gpu`
# or `gres`. `auto` asks for none: the submitting host cannot know the compute node (docs/gpu.md).
# Evaluating an INT8 variant runs on the CPU, so those evaluate jobs ask for none either.
def add_device(rules):
    from compressflow import device

    gpus = device.gpus_requested(config["device"])

    def evaluate_gpus(wildcards):
        return 0 if technique_of(wildcards.variant) in QUANT_TECHNIQUES else gpus

    for r in rules:
        if r.name in layout.DEVICE_RULES:
            r.set_params(device=config["device"])
            if gpus and not ({"gpu", "gres"} & set(r.resources.keys())):
                r.resources.update(
                    {"gpu": evaluate_gpus if r.name == "evaluate" else gpus}
                )


def check_device_here():
    """onstart of a local run (a cluster's nodes are not this host): `device: cuda` needs a GPU here."""
    from compressflow import device

    if workflow.local_exec:
        try:
            device.check_local(config["device"])
        except CompressflowError as exc:
            sys.exit(f"compressflow config error: {exc}")


# --- code digests (Snakefile, after every include) ---
# A rule's script is a shim over compressflow/, so each rule gets the digest of the library code its
# script can reach as param `code`; Snakemake's params trigger reruns a job when that code changes.
def add_code_digests(rules):
    from compressflow import codedigest

    cache = os.path.join(".snakemake", "compressflow-codedigest.json")
    codedigest.load_cache(cache)
    user = user_code_digests()
    for r in rules:
        if r.script:
            script = os.path.join(str(r.basedir), r.script)
            r.set_params(code=codedigest.script_digest(script, workflow.basedir))
            if (
                user
            ):  # only configs with a user module get this param (others keep their params)
                r.set_params(user_code=lambda w: user.get(getattr(w, "model", None)))
    codedigest.save_cache(cache)


# --- user models (models.<name>.module + code_path) ---
# Every job can import the user's code: its folder goes on PYTHONPATH (recipes also add it when rebuilding).
USER_CODE_PATHS = [
    os.path.abspath(spec["code_path"])
    for spec in config["models"].values()
    if spec.get("module") and spec.get("code_path")
]
if USER_CODE_PATHS:
    os.environ.update(
        PYTHONPATH=os.pathsep.join([*USER_CODE_PATHS, os.environ.get("PYTHONPATH", "")])
    )


def user_code_digests():
    """model -> digest of its module and the files under its code_path (models built by arch have none)."""
    from compressflow import codedigest

    return {
        name: codedigest.user_code_digest(spec["module"], spec.get("code_path"))
        for name, spec in config["models"].items()
        if spec.get("module")
    }


_CHECKED = []


def unchanged_artifacts(wildcards):
    """No artifact may have changed since its provenance was written, unless the user forces the rule that makes
    it: checked while the DAG is built (before Snakemake deletes outputs it will rebuild, and also when there is
    nothing to do). Cheap: a stat per file, a hash only for files modified after their record. No inputs.
    """
    if _CHECKED or not workflow.is_main_process:
        return []
    _CHECKED.append(True)
    dag = workflow.dag_settings
    corrupt = verify.changed_artifacts(
        "results",
        forced={*dag.forcerun, *(dag.targets if dag.forcetargets else ())},
        forceall=dag.forceall,
    )
    if corrupt is not None:
        sys.exit(f"compressflow error: {corrupt}")
    return []


# --- make_report (rules/report.smk) and its fallback when jobs failed (Snakefile's onerror) ---
def report_inputs():
    """make_report's inputs; also what ``onerror`` reports from when a job failed."""
    return dict(
        metrics=[f"results/{m}/{v}/metrics.json" for m, v in built_variants()]
        + [e["metrics_path"] for e in deploy_entries() if not e.get("skipped")],
        sensitivity=[
            f"results/{m}/sensitivity/sensitivity.csv" for m in sensitivity_models()
        ],
        layer_error=[
            f"results/{m}/{v}/layer_error.csv" for m, v in layer_error_tables()
        ],
        benchmarks=[e["json"] for e in benchmark_entries()],
    )


def report_params():
    return dict(
        entries=[
            {
                "model": m,
                "variant": v,
                "parent": "" if v == ROOT else parent_of(v),
                "technique": technique_of(v),
                **repeat_info(v),
                "benchmark_path": layout.benchmark_json(m, v, layout.PYTORCH),
            }
            for m, v in built_variants()
        ]
        + [
            {
                **{
                    k: e[k]
                    for k in (
                        "model",
                        "variant",
                        "runtime",
                        "parent",
                        "technique",
                        "skipped",
                    )
                    if k in e
                },
                **(
                    {
                        "benchmark_path": layout.benchmark_json(
                            e["model"], e["variant"], e["runtime"]
                        )
                    }
                    if e["runtime"] in BENCHMARK_ARTIFACTS
                    else {}
                ),
            }
            for e in deploy_entries()
        ],
        sensitivity_models=sensitivity_models(),
        layer_error_tables=[[m, v] for m, v in layer_error_tables()],
        min_speedup=config["evaluate"]["min_speedup"],
        max_accuracy_drop=config["report"]["max_accuracy_drop"],
        stats={k: v for k, v in config["report"].items() if k != "max_accuracy_drop"},
        seed=config["seed"],
    )


RUN_STARTED = (
    []
)  # onstart's time: the failure records written at or after it are this run's


def report_failures(snakemake_log):
    """``onerror``: the report from what was built (failed rows marked), then one line per failed job."""
    from compressflow import failures
    from compressflow.steps.make_report import make_partial_report

    records = failures.since(RUN_STARTED[0])
    text = ""
    for path in (
        snakemake_log if isinstance(snakemake_log, (list, tuple)) else [snakemake_log]
    ):
        try:
            text += Path(path).read_text(errors="replace") if path else ""
        except OSError:
            pass
    lines = failures.summary_lines(records, text)
    outputs = dict(rules.make_report.output.items())
    try:
        marked = make_partial_report(report_inputs(), outputs, report_params(), records)
        said = (
            f"compressflow: {outputs['md']} was written from what was built; "
            f"{len(marked)} row(s) say failed or not built"
        )
    except Exception as exc:
        said = f"compressflow: no report could be written from what was built ({type(exc).__name__}: {exc})"
    print(said, file=sys.stderr)
    print(f"compressflow: {len(lines)} job(s) failed:", file=sys.stderr)
    for line in lines:
        print(f"  {line}", file=sys.stderr)
