"""Deployment runtimes on CPU: ONNX Runtime (FP32, static INT8 QDQ) and OpenVINO (FP32 IR, NNCF INT8).

Every runtime row gets the same metrics keys as the PyTorch ``evaluate`` step, plus agreement
with the PyTorch artifact of the same variant and a speed-up against its parent timed in the same
process (``evaluate.latency_pair``): the PyTorch model for FP32 rows, the FP32 runtime model for
INT8 rows.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch

from compressflow import data, export, io, models, sysinfo
from compressflow import evaluate as ev
from compressflow.errors import CompressflowError

VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def size_mb(*paths) -> float:
    return sum(os.path.getsize(p) for p in paths) / 2**20


def has_vnni(isa: str | None = None) -> bool:
    """Whether the CPU has 8-bit dot-product instructions (VNNI/AMX); without them ORT needs reduce_range."""
    isa = sysinfo.cpu()["isa"] if isa is None else isa
    return any(f in isa.split() for f in VNNI_FLAGS)


def measure(
    runtime: str,
    logits: torch.Tensor,
    test: dict,
    *,
    own_fn,
    parent_fn,
    size: float,
    params: int,
    threads: int,
    latency: dict,
    torch_logits: torch.Tensor | None,
) -> dict:
    """The PyTorch evaluate step's metrics for a non-PyTorch artifact (same keys, same functions)."""
    y = test["y"]
    metrics = {
        "runtime": runtime,
        "top1": ev.topk(logits, y, 1),
        "top5": ev.topk(logits, y, 5),
        "n_test": int(len(y)),
        "params": int(params),
        "size_mb": size,
        "per_class_top1": ev.per_class_top1(logits, y, test["classes"]),
        "threads": threads,
        "latency_input": latency["input_size"],
        "latency_batch": 1,
        **sysinfo.cpu(),
    }
    if torch_logits is not None:
        metrics.update(ev.agreement(logits, torch_logits))
    example = torch.zeros(1, 3, latency["input_size"], latency["input_size"])
    own, theirs = ev.latency_pair(own_fn, parent_fn, example, warmup=latency["warmup"], iters=latency["iters"])
    metrics.update(own)
    metrics["parent_latency_ms_p50"] = theirs["latency_ms_p50"]
    metrics["speedup_vs_parent"] = theirs["latency_ms_p50"] / own["latency_ms_p50"]
    return metrics


def torch_runner(model: torch.nn.Module, threads: int):
    torch.set_num_threads(threads)
    model.eval()

    @torch.no_grad()
    def run(x):
        return model(x)

    return run


# --- ONNX Runtime ------------------------------------------------------------------------------------------------------


def ort_predict(sess, split: dict, batch_size: int) -> torch.Tensor:
    return torch.cat([export.run_onnx(sess, x) for x, _ in data.batches(split, batch_size)])


def ort_runner(sess):
    name = sess.get_inputs()[0].name

    def run(x):
        return sess.run(None, {name: x.numpy()})

    return run


class CalibrationReader:
    """Feeds the calibration split to ORT's quantizer in the same normalisation as training."""

    def __init__(self, split: dict, input_name: str, batch_size: int = 16):
        self._batches = [x.numpy() for x, _ in data.batches(split, batch_size)]
        self._name = input_name
        self._it = iter(self._batches)

    def get_next(self):
        x = next(self._it, None)
        return None if x is None else {self._name: x}

    def rewind(self):
        self._it = iter(self._batches)


def quantize_ort(
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
        reader = CalibrationReader(calib, export.INPUT_NAME)
        with io.atomic_path(dst) as tmp:
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


# --- OpenVINO ----------------------------------------------------------------------------------------------------------


def convert_openvino(onnx_path, xml_path) -> dict:
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


def compile_openvino(path, threads: int, precision: str = "auto"):
    """Compile for CPU; ``precision`` 'f32' pins INFERENCE_PRECISION_HINT, 'auto' keeps the plugin's choice."""
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
    if precision == "f32":
        config["INFERENCE_PRECISION_HINT"] = "f32"
    elif precision != "auto":
        raise CompressflowError(f"openvino inference_precision '{precision}' is unknown", "use f32 or auto")
    return core.compile_model(core.read_model(str(path)), "CPU", config)


def precision_of(compiled) -> str:
    """The element type the CPU plugin actually computes in (e.g. f32 or bf16)."""
    value = compiled.get_property("INFERENCE_PRECISION_HINT")
    return getattr(value, "get_type_name", lambda: str(value))()


def ov_runner(compiled):
    request = compiled.create_infer_request()

    def run(x):
        return request.infer({0: x.numpy()})

    return run


def ov_predict(compiled, split: dict, batch_size: int) -> torch.Tensor:
    request = compiled.create_infer_request()
    outs = []
    for x, _ in data.batches(split, batch_size):
        request.infer({0: x.numpy()})
        outs.append(torch.from_numpy(np.array(request.get_output_tensor(0).data)))
    return torch.cat(outs)


def quantize_openvino(
    xml_path,
    dst_xml,
    calib: dict,
    val: dict,
    *,
    preset: str = "performance",
    ignored_scope=(),
    accuracy_control: bool = False,
    max_drop: float = 0.01,
    threads: int = 1,
) -> dict:
    """NNCF post-training INT8 of the FP32 IR; with accuracy control, layers go back to FP32 until val top-1 is within max_drop."""
    import nncf
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(xml_path))
    calib_ds = nncf.Dataset([x.numpy() for x, _ in data.batches(calib, 1)])
    scope = nncf.IgnoredScope(names=list(ignored_scope)) if ignored_scope else None
    kwargs = {
        "preset": {"performance": nncf.QuantizationPreset.PERFORMANCE, "mixed": nncf.QuantizationPreset.MIXED}[preset],
        "subset_size": int(len(calib["y"])),
    }
    if scope is not None:
        kwargs["ignored_scope"] = scope
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


def _torch_side(inputs):
    """The PyTorch artifact of this variant: its parameter count and test logits."""
    model, _ = io.load_model(inputs["torch_model"])
    logits = io.load_tensors(inputs["torch_logits"], "PyTorch test logits")
    return model, logits


def step_quantize_onnxruntime(inputs, outputs, params, threads):
    q = params["int8"]
    info = quantize_ort(
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
    io.write_json(info, outputs["report"])


def step_evaluate_onnxruntime(inputs, outputs, params, threads):
    """FP32 rows race the PyTorch artifact; INT8 rows race the FP32 ONNX model."""
    torch.set_num_threads(params["threads"])
    test = data.load_split(inputs["test"])
    torch_model, torch_logits = _torch_side(inputs)
    sess = export.session(inputs["onnx"], params["threads"])
    logits = ort_predict(sess, test, params["batch_size"])
    if inputs.get("parent_onnx"):
        parent_fn = ort_runner(export.session(inputs["parent_onnx"], params["threads"]))
        parent_runtime = "onnxruntime"
    else:
        parent_fn, parent_runtime = torch_runner(torch_model, params["threads"]), "pytorch"
    metrics = measure(
        params["runtime"],
        logits,
        test,
        own_fn=ort_runner(sess),
        parent_fn=parent_fn,
        size=size_mb(inputs["onnx"]),
        params=models.count_params(torch_model),
        threads=params["threads"],
        latency=params["latency"],
        torch_logits=torch_logits,
    )
    metrics.update(parent_runtime=parent_runtime, precision="int8" if inputs.get("parent_onnx") else "fp32", providers=sess.get_providers())
    if inputs.get("quant_report"):
        metrics["quantization"] = io.read_json(inputs["quant_report"])
    io.write_json(metrics, outputs["metrics"])


def step_convert_openvino(inputs, outputs, params, threads):
    info = convert_openvino(inputs["onnx"], outputs["xml"])
    print(f"OpenVINO IR: {info}", file=sys.stderr)


def step_quantize_openvino(inputs, outputs, params, threads):
    q = params["int8"]
    info = quantize_openvino(
        inputs["xml"],
        outputs["xml"],
        data.load_split(inputs["calib"]),
        data.load_split(inputs["val"]),
        preset=q["preset"],
        ignored_scope=q.get("ignored_scope", []),
        accuracy_control=q["accuracy_control"],
        max_drop=q["max_drop"],
        threads=threads,
    )
    print(f"NNCF INT8: {info}", file=sys.stderr)
    io.write_json(info, outputs["report"])


def step_evaluate_openvino(inputs, outputs, params, threads):
    """Times the precision the config asks for, and records both hints so no row claims FP32 that ran bf16."""
    torch.set_num_threads(params["threads"])
    th = params["threads"]
    test = data.load_split(inputs["test"])
    torch_model, torch_logits = _torch_side(inputs)
    path = inputs["model"]
    chosen = params["precision"]
    compiled = {p: compile_openvino(path, th, p) for p in ("auto", "f32")}
    logits = ov_predict(compiled[chosen], test, params["batch_size"])
    if inputs.get("parent_ir"):
        parent_fn, parent_runtime = ov_runner(compile_openvino(inputs["parent_ir"], th, chosen)), "openvino"
    else:
        parent_fn, parent_runtime = torch_runner(torch_model, th), "pytorch"
    files = [path] + ([str(Path(path).with_suffix(".bin"))] if str(path).endswith(".xml") else [])
    metrics = measure(
        params["runtime"],
        logits,
        test,
        own_fn=ov_runner(compiled[chosen]),
        parent_fn=parent_fn,
        size=size_mb(*files),
        params=models.count_params(torch_model),
        threads=th,
        latency=params["latency"],
        torch_logits=torch_logits,
    )
    lat = params["latency"]
    example = torch.zeros(1, 3, lat["input_size"], lat["input_size"])
    auto, f32 = ev.latency_pair(ov_runner(compiled["auto"]), ov_runner(compiled["f32"]), example, warmup=lat["warmup"], iters=lat["iters"])
    int8 = "int8+" if params["runtime"] != "openvino" else ""
    metrics.update(
        parent_runtime=parent_runtime,
        inference_precision_setting=chosen,
        precision=int8 + precision_of(compiled[chosen]),
        precision_default_hint=precision_of(compiled["auto"]),
        latency_ms_p50_default_hint=auto["latency_ms_p50"],
        precision_f32_hint=precision_of(compiled["f32"]),
        latency_ms_p50_f32_hint=f32["latency_ms_p50"],
    )
    if inputs.get("quant_report"):
        metrics["quantization"] = io.read_json(inputs["quant_report"])
    print(
        f"{params['runtime']}: top1 {metrics['top1']:.4f}, p50 {metrics['latency_ms_p50']:.2f} ms ({metrics['precision']}), "
        f"default hint {metrics['precision_default_hint']} {auto['latency_ms_p50']:.2f} ms, f32 hint {f32['latency_ms_p50']:.2f} ms",
        file=sys.stderr,
    )
    io.write_json(metrics, outputs["metrics"])
