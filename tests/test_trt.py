"""TensorRT: the skip path runs everywhere; the engine tests need an NVIDIA GPU with envs/tensorrt.yaml."""

import pytest
import torch

from compressflow import data, files
from compressflow.errors import CompressflowError
from compressflow.runtimes import tensorrt as trt
from compressflow.steps.build_trt_engine import build_trt_engine as build_trt_engine_step
from compressflow.steps.evaluate_tensorrt import evaluate_tensorrt as evaluate_tensorrt_step
from tests.conftest import digits_splits, export_onnx, save_untrained_resnet18

LATENCY = {"input_size": 32, "warmup": 2, "iters": 5}
TRT = {
    "mode": "auto",
    "min_batch": 1,
    "opt_batch": 4,
    "max_batch": 64,
    "calib_batch": 8,
    "calibrate_method": "MinMax",
    "fp16": True,
    "int8": True,
    "int8_calibrator": True,
}
REASON = trt.unavailable()
gpu = pytest.mark.skipif(REASON is not None, reason=f"TensorRT cannot run here: {REASON}")


def _build(d, precision, mode="auto", out=None):
    out = out or d / f"tensorrt-{precision}"
    outputs = {
        k: out / name
        for k, name in (("engine", "model.engine"), ("build", "build.json"), ("build_log", "build.log"), ("timing_cache", "timing.cache"))
    }
    if precision == "int8":
        outputs["qdq_onnx"] = out / "model.qdq.onnx"
    if precision == "int8-calib":
        outputs["calib_cache"] = out / "calibration.cache"
    params = {"precision": precision, "mode": mode, "tensorrt": dict(TRT, mode=mode), "data_size": 16, "latency": LATENCY}
    build_trt_engine_step({"onnx": d / "model.onnx", "calib": d / "calib.pt"}, outputs, params, 1)
    return outputs


def _evaluate(d, runtime, out, parent=None):
    inputs = {
        "engine": d / runtime / "model.engine",
        "build": d / runtime / "build.json",
        "torch_model": d / "model.pt",
        "torch_logits": d / "test_logits.pt",
        "test": d / "test.pt",
    }
    if parent:
        inputs["parent_engine"] = d / parent / "model.engine"
    params = {"runtime": runtime, "tensorrt": TRT, "threads": 1, "batch_size": 256, "latency": LATENCY}
    evaluate_tensorrt_step(inputs, {"metrics": out}, params, 1)
    return files.read_json(out)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("trt")
    model = save_untrained_resnet18(d)
    splits = digits_splits()
    for name in ("calib", "val", "test"):
        files.save_tensors(splits[name], d / f"{name}.pt")
    with torch.no_grad():
        files.save_tensors(torch.cat([model(x) for x, _ in data.batches(splits["test"], 256)]), d / "test_logits.pt")
    export_onnx(d)
    return d


@pytest.mark.skipif(REASON is None, reason="this machine can run TensorRT")
def test_skip_path_writes_null_metrics_with_a_reason(tmp_path, capsys):
    (tmp_path / "model.onnx").write_bytes(b"unused when skipping")
    out = _build(tmp_path, "fp16")
    assert files.read_json(out["build"]) == {"skipped": REASON, "precision": "fp16"}
    assert out["engine"].stat().st_size == 0
    assert capsys.readouterr().err.count("TensorRT fp16 engine skipped") == 1
    m = _evaluate(tmp_path, "tensorrt-fp16", tmp_path / "metrics.json")
    assert m["runtime"] == "tensorrt-fp16" and m["skipped"] == REASON and m["note"] == f"skipped: {REASON}"
    assert m["top1"] is None and m["latency_ms_p50"] is None and m["speedup_vs_parent"] is None
    for key in (
        "top5",
        "n_test",
        "params",
        "size_mb",
        "per_class_top1",
        "threads",
        "latency_input",
        "latency_batch",
        "cpu_model",
        "isa",
        "top1_agreement_vs_parent",
        "parent_latency_ms_p50",
        "latency_ms_p90",
        "throughput_ips",
    ):
        assert key in m


@pytest.mark.skipif(REASON is None, reason="this machine can run TensorRT")
def test_mode_on_fails_fast(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"unused")
    with pytest.raises(CompressflowError, match=f"deploy.tensorrt.mode is 'on' but {REASON}"):
        _build(tmp_path, "fp16", mode="on")
    assert not (tmp_path / "tensorrt-fp16" / "build.json").exists()


@pytest.mark.gpu
@gpu
def test_fp16_engine_matches_pytorch(exported, tmp_path):
    out = _build(exported, "fp16")
    info = files.read_json(out["build"])
    assert info["precision"] == "fp16" and info["profile"]["opt"] == [4, 3, 32, 32] and out["timing_cache"].stat().st_size > 0
    m = _evaluate(exported, "tensorrt-fp16", tmp_path / "m.json")
    assert m["parent_runtime"] == "pytorch-cuda" and m["cosine_vs_parent"] > 0.999 and m["latency_ms_p50"] > 0


@pytest.mark.gpu
@gpu
def test_int8_engines_both_ways(exported, tmp_path):
    _build(exported, "fp16")
    explicit = _build(exported, "int8")
    assert files.read_json(explicit["build"])["int8_method"].startswith("explicit Q/DQ")
    m = _evaluate(exported, "tensorrt-int8", tmp_path / "int8.json", parent="tensorrt-fp16")
    assert m["parent_runtime"] == "tensorrt-fp16" and m["cosine_vs_parent"] > 0.95
    calib = _build(exported, "int8-calib")
    info = files.read_json(calib["build"])
    if trt.has_implicit_calibrator():
        assert info["int8_method"].startswith("implicit") and calib["calib_cache"].stat().st_size > 0
        m = _evaluate(exported, "tensorrt-int8-calib", tmp_path / "calib.json", parent="tensorrt-fp16")
        assert m["cosine_vs_parent"] > 0.95
    else:
        assert "IInt8EntropyCalibrator2" in info["skipped"]
