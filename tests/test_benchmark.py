"""compressflow.benchmark: loading each CPU runtime's artifact, collecting the JSON files, and the rule."""

import json

import pytest
import torch

from compressflow import benchmark, measure, models
from compressflow.errors import CompressflowError
from compressflow.runtimes import pytorch
from tests.conftest import snakemake


def test_load_runner_runs_a_pytorch_artifact_in_its_precision(tmp_path):
    from compressflow import artifacts, recipes

    artifacts.save_model(models.build("resnet18", 3).eval(), recipes.base_recipe("resnet18", 3), tmp_path / "model.pt")
    fn, precision = benchmark.load_runner("pytorch", tmp_path / "model.pt", threads=1)
    assert precision == "fp32" and fn(torch.zeros(2, 3, 16, 16)).shape == (2, 3)


def test_unknown_runtime_lists_the_cpu_runtimes():
    with pytest.raises(CompressflowError, match=r"benchmark runtime 'tensorrt-fp16' is unknown; fix: use one of: pytorch, onnxruntime,"):
        benchmark.load_runner("tensorrt-fp16", "model.engine", threads=1)


def test_pytorch_precision_follows_the_recipe():
    assert pytorch.precision({"transforms": [{"kind": "fold_bn"}]}) == "fp32"
    assert pytorch.precision({"transforms": [{"kind": "quantize", "mode": "dynamic"}]}) == "int8-dynamic"
    assert pytorch.precision({"transforms": [{"kind": "quantize", "fp32_layers": ["fc"]}]}) == "int8+fp32"
    assert pytorch.precision({"transforms": [{"kind": "quantize"}]}) == "int8"


def test_collect_makes_one_row_per_batch(tmp_path):
    from compressflow import files

    rec = {
        "model": "m",
        "variant": "v",
        "runtime": "pytorch",
        "precision": "fp32",
        "macs": 2_000_000_000,
        "params": 10,
        "input_size": 32,
        "threads": 1,
        "cpu_model": "cpu",
        "isa": "avx2",
        "peak_rss_mib_before_load": 100.0,
        "versions": {"torch": "2"},
        "batches": [
            {
                "batch": b,
                "latency_ms_p50": 1.0,
                "latency_ms_p90": 2.0,
                "latency_ms_p99": 3.0,
                "throughput_ips": 9.0,
                "peak_rss_mib": 100.0 + b,
            }
            for b in (1, 8)
        ],
    }
    files.write_json(rec, tmp_path / "a.json")
    df = benchmark.collect([tmp_path / "a.json"])
    assert list(df.columns[: len(benchmark.COLUMNS)]) == benchmark.COLUMNS and "v_torch" in df.columns
    assert df.batch.tolist() == [1, 8] and df.rss_growth_mib.tolist() == [1.0, 8.0] and df.gmacs.tolist() == [2.0, 2.0]


def test_benchmark_artifact_rule_on_tiny_run(tiny_copy):
    """The real rule for one quantized PyTorch artifact: one JSON with a row per batch size."""
    target = "results/benchmarks/resnet18/ptq-x86/pytorch.json"
    (tiny_copy / target).unlink()  # the tiny run made it; the rule must make it again
    snakemake(tiny_copy, "--cores", "1", target)
    rec = json.loads((tiny_copy / target).read_text())
    assert rec["precision"] == "int8"
    assert [b["batch"] for b in rec["batches"]] == [1, 2]
    fp32 = measure.count_macs(models.build("resnet18", 10), torch.zeros(1, 3, 32, 32))
    assert rec["macs"] == fp32 and rec["params"] > 1e7
    assert all(b["latency_ms_p50"] > 0 and b["peak_rss_mib"] > 50 for b in rec["batches"])
    assert rec["versions"]["torch"] and rec["cpu_model"]


def test_a_file_named_as_artifact_parent_and_mac_source_is_rebuilt_once(tmp_path, monkeypatch):
    """A QAT PT2E rebuild takes ~15 s: the benchmark job loads each PyTorch file once, whatever role it plays."""
    from compressflow import artifacts, recipes

    path = tmp_path / "model.pt"
    artifacts.save_model(models.build("resnet18", 3).eval(), recipes.base_recipe("resnet18", 3), path)
    assert artifacts.read_recipe(path) == recipes.base_recipe("resnet18", 3)
    calls = []
    real = artifacts.load_model
    monkeypatch.setattr(artifacts, "load_model", lambda p, *size: calls.append(str(p)) or real(p, *size))
    out = benchmark.benchmark(
        "pytorch", path, path, batch_sizes=[1], warmup=1, iters=2, input_size=16, threads=1, parent=("pytorch", str(path))
    )
    assert calls == [str(path)] and out["params"] > 0
