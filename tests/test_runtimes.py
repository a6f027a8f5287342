"""ONNX Runtime and OpenVINO rows: the PyTorch evaluate keys, honest precision, real INT8 models."""

import pytest
import torch

from compressflow import artifacts, data, files, models, recipes, train
from compressflow import evaluate as ev
from compressflow.errors import CompressflowError
from compressflow.runtimes import onnxruntime as ort_rt
from compressflow.runtimes import openvino as ov_rt
from compressflow.steps.convert_openvino import convert_openvino as convert_openvino_step
from compressflow.steps.evaluate_onnxruntime import evaluate_onnxruntime as evaluate_onnxruntime_step
from compressflow.steps.evaluate_openvino import evaluate_openvino as evaluate_openvino_step
from compressflow.steps.quantize_onnxruntime import quantize_onnxruntime as quantize_onnxruntime_step
from compressflow.steps.quantize_openvino import quantize_openvino as quantize_openvino_step
from tests.conftest import REPO, digits_splits, export_onnx

LATENCY = {"input_size": 32, "warmup": 1, "iters": 3}
TIMING = {"threads": 1, "batch_size": 256, "latency": LATENCY}
RUNTIME_MODULES = {f"compressflow.runtimes.{m}" for m in ("onnx", "onnxruntime", "openvino", "tensorrt")}


@pytest.mark.parametrize(
    "script, reaches",
    [
        ("export_onnx", {"onnx"}),
        ("quantize_onnxruntime", {"onnx", "onnxruntime"}),
        ("evaluate_onnxruntime", {"onnx", "onnxruntime"}),
        ("convert_openvino", {"openvino"}),
        ("quantize_openvino", {"openvino"}),
        ("evaluate_openvino", {"openvino"}),
        ("build_trt_engine", {"onnx", "onnxruntime", "tensorrt"}),  # TensorRT's INT8 engine takes ORT's Q/DQ model
        ("evaluate_tensorrt", {"tensorrt"}),  # the engine and its build record only
        ("benchmark_artifact", {"onnx", "onnxruntime", "openvino"}),
    ],
)
def test_each_runtime_rule_reaches_only_its_runtimes(script, reaches):
    """The package imports none of its modules, so a change to one runtime reruns only the rules that use it."""
    from compressflow import codedigest

    closure = codedigest.closure(REPO / "scripts" / f"{script}.py", codedigest.Library(REPO))
    assert RUNTIME_MODULES & set(closure) == {f"compressflow.runtimes.{m}" for m in reaches}


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """A ResNet18 trained briefly at 16 px, its test logits, ONNX file, ORT INT8 model and OpenVINO FP32/INT8 IRs."""
    d = tmp_path_factory.mktemp("runtimes")
    torch.set_num_threads(1)
    splits = digits_splits()
    for name, split in splits.items():
        files.save_tensors(split, d / f"{name}.pt")
    model = models.build("resnet18", 10)
    train.fit(model, splits["train"], epochs=3, lr=0.05, batch_size=64, seed=0, desc="test")
    artifacts.save_model(model.eval(), recipes.base_recipe("resnet18", 10), d / "model.pt")
    torch_metrics, logits = ev.evaluate(model, splits["test"], d / "model.pt", batch_size=256, threads=1)
    files.save_tensors(logits, d / "test_logits.pt")
    export_onnx(d)
    int8 = {"calibrate_method": "MinMax", "per_channel": True, "activation_type": "QUInt8", "reduce_range": "auto"}
    quantize_onnxruntime_step(
        {"onnx": d / "model.onnx", "calib": d / "calib.pt"}, {"onnx": d / "int8.onnx", "report": d / "ort_q.json"}, {"int8": int8}, 1
    )
    convert_openvino_step({"onnx": d / "model.onnx"}, {"xml": d / "ov" / "model.xml"}, {}, 1)
    q = {"preset": "performance", "ignored_scope": [], "accuracy_control": False, "max_drop": 0.01}
    quantize_openvino_step(
        {"xml": d / "ov" / "model.xml", "calib": d / "calib.pt", "val": d / "val.pt"},
        {"xml": d / "ov8" / "model.xml", "report": d / "ov_q.json"},
        {"int8": q},
        1,
    )
    return d, torch_metrics


def _common(d):
    return {"torch_model": d / "model.pt", "torch_logits": d / "test_logits.pt", "test": d / "test.pt"}


def _check_row(m, torch_metrics, runtime, parent_runtime, min_agreement):
    missing = set(torch_metrics) - set(m)
    assert not missing, f"keys of the PyTorch evaluate step missing: {missing}"
    assert m["runtime"] == runtime and m["parent_runtime"] == parent_runtime
    assert m["n_test"] == torch_metrics["n_test"] and m["params"] == torch_metrics["params"]
    assert m["top1_agreement_vs_parent"] >= min_agreement
    assert abs(m["top1"] - torch_metrics["top1"]) <= 1 - min_agreement + 1e-9
    # Not timed here: benchmark_artifact is the one source of CPU latencies (tests/test_latency_source.py).
    assert "latency_ms_p50" not in m and "speedup_vs_parent" not in m and m["threads"] == 1


def test_onnxruntime_fp32_row(deployed, tmp_path):
    d, tm = deployed
    assert tm["top1"] > 0.5  # the fixture model learned something, so agreement means something
    evaluate_onnxruntime_step(
        dict(_common(d), onnx=d / "model.onnx"), {"metrics": tmp_path / "m.json"}, dict(TIMING, runtime="onnxruntime"), 1
    )
    m = files.read_json(tmp_path / "m.json")
    _check_row(m, tm, "onnxruntime", "pytorch", 0.999)
    assert m["precision"] == "fp32" and m["max_abs_diff_vs_parent"] < 1e-3


def test_onnxruntime_int8_is_qdq_smaller_and_close(deployed, tmp_path):
    import onnx

    d, tm = deployed
    ops = {n.op_type for n in onnx.load(str(d / "int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    q = files.read_json(d / "ort_q.json")
    assert q["reduce_range"] == (not ort_rt.has_vnni()) and q["activation_type"] == "QUInt8"
    inputs = dict(_common(d), onnx=d / "int8.onnx", parent_onnx=d / "model.onnx", quant_report=d / "ort_q.json")
    evaluate_onnxruntime_step(inputs, {"metrics": tmp_path / "m.json"}, dict(TIMING, runtime="onnxruntime-int8"), 1)
    m = files.read_json(tmp_path / "m.json")
    _check_row(m, tm, "onnxruntime-int8", "onnxruntime", 0.95)
    assert m["size_mb"] < 0.3 * (d / "model.onnx").stat().st_size / 2**20
    assert m["precision"] == "int8" and m["quantization"]["format"] == "QDQ"


def test_reduce_range_follows_vnni():
    assert ort_rt.has_vnni("avx2 fma avx512_vnni") and ort_rt.has_vnni("amx_int8")
    assert not ort_rt.has_vnni("avx2 fma avx512f")


def test_bad_quantizer_knob_is_one_line(deployed, tmp_path):
    d, _ = deployed
    with pytest.raises(CompressflowError, match="calibrate_method 'KL' is unknown; fix: use MinMax, Entropy or Percentile"):
        ort_rt.quantize(d / "model.onnx", tmp_path / "q.onnx", data.load_split(d / "calib.pt"), calibrate_method="KL")


def test_openvino_fp32_records_precision_actually_used(deployed, tmp_path):
    d, tm = deployed
    evaluate_openvino_step(
        dict(_common(d), model=d / "ov" / "model.xml"),
        {"metrics": tmp_path / "m.json"},
        dict(TIMING, runtime="openvino", precision="f32"),
        1,
    )
    m = files.read_json(tmp_path / "m.json")
    _check_row(m, tm, "openvino", "pytorch", 0.999)
    assert m["precision"] == "f32" and m["precision_f32_hint"] == "f32"
    assert m["precision_default_hint"] in ("f32", "bf16", "f16")
    assert not any(k.startswith("latency_ms") for k in m)  # the job times nothing: benchmark_artifact times both hints
    assert m["size_mb"] > 0.9 * (d / "model.onnx").stat().st_size / 2**20  # FP32 weights on disk, not FP16


@pytest.mark.parametrize("chosen", ["f32", "auto"])
def test_openvino_benchmark_times_both_precision_hints(deployed, chosen):
    """The timed OpenVINO row runs the configured hint; the other hint is timed beside it and labelled *_hint."""
    from compressflow import benchmark

    d, _ = deployed
    rec = benchmark.benchmark(
        "openvino",
        d / "ov" / "model.xml",
        d / "model.pt",
        batch_sizes=[1],
        warmup=1,
        iters=2,
        input_size=32,
        threads=1,
        ov_precision=chosen,
    )
    assert rec["precision_f32_hint"] == "f32" and rec["precision_default_hint"] in ("f32", "bf16", "f16")
    assert rec["latency_ms_p50_default_hint"] > 0 and rec["latency_ms_p50_f32_hint"] > 0
    own = "default" if chosen == "auto" else "f32"
    assert rec[f"latency_ms_p50_{own}_hint"] == rec["batches"][0]["latency_ms_p50"]  # the row's own latency is its hint's
    assert rec["precision"] == rec[f"precision_{own}_hint"]


@pytest.mark.parametrize("runtime", ["openvino-int8", "openvino-qdq"])
def test_openvino_int8_rows(deployed, tmp_path, runtime):
    d, tm = deployed
    model = d / "ov8" / "model.xml" if runtime == "openvino-int8" else d / "int8.onnx"
    evaluate_openvino_step(
        dict(_common(d), model=model, parent_ir=d / "ov" / "model.xml"),
        {"metrics": tmp_path / "m.json"},
        dict(TIMING, runtime=runtime, precision="f32"),
        1,
    )
    m = files.read_json(tmp_path / "m.json")
    _check_row(m, tm, runtime, "openvino", 0.95)
    assert m["precision"] == "int8+f32"
    if runtime == "openvino-int8":
        assert files.read_json(d / "ov_q.json")["fake_quantize_ops"] > 10
        assert m["size_mb"] < 0.3 * (d / "model.onnx").stat().st_size / 2**20


def test_unknown_ignored_scope_is_one_line(deployed, tmp_path):
    d, _ = deployed
    with pytest.raises(CompressflowError, match=r"NNCF refused .*no_such_node.*; fix: fix deploy.openvino.int8"):
        ov_rt.quantize(
            d / "ov" / "model.xml",
            tmp_path / "q.xml",
            data.load_split(d / "calib.pt"),
            data.load_split(d / "val.pt"),
            ignored_scope=["no_such_node"],
        )


def test_openvino_compiles_and_quantizes_with_the_process_core(deployed, tmp_path, monkeypatch):
    """One openvino.Core per process (a Core per call preceded the suite's SIGSEGV: docs/segfault.md)."""
    import openvino as ov

    d, _ = deployed
    shared = ov_rt.core()

    def second_core(*args, **kwargs):
        raise AssertionError("a second openvino.Core was created")

    monkeypatch.setattr(ov, "Core", second_core)
    for hint in ("f32", "auto"):
        ov_rt.precision_of(ov_rt.compile_model(d / "ov" / "model.xml", 1, hint))
    calib = files.load_tensors(d / "calib.pt")
    ov_rt.quantize(d / "ov" / "model.xml", tmp_path / "q" / "model.xml", calib, calib)
    assert ov_rt.core() is shared
