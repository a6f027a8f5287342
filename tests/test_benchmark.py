"""compressflow.benchmark: MAC counting (float and torch.ao quantized), percentiles, timing, and the rule."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from compressflow import benchmark, models
from tests.conftest import snakemake, tiny_model


def test_macs_of_tiny_conv_net_match_hand_count():
    # conv1: 8 out ch * 4*4 px * (3*3*3) = 3456; conv2: 8*16 * (8*3*3) = 9216; linear: 3 * 8 = 24
    assert benchmark.count_macs(tiny_model(3), torch.zeros(1, 3, 4, 4)) == 3456 + 9216 + 24
    assert benchmark.count_macs(tiny_model(3), torch.zeros(2, 3, 4, 4)) == 2 * (3456 + 9216 + 24)


def test_macs_of_grouped_conv_and_lstm():
    dw = nn.Conv2d(4, 4, 3, padding=1, groups=4)  # 4 ch * 25 px * (1*3*3)
    assert benchmark.count_macs(dw, torch.zeros(1, 4, 5, 5)) == 900
    lstm = models.build("lstm", 10)  # 8 steps x 4 gates x 64 x (8 + 64), then fc 64 -> 10
    assert benchmark.count_macs(lstm, torch.zeros(1, 3, 8, 8)) == 8 * 4 * 64 * (8 + 64) + 640


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2"])
def test_macs_match_torchvision_published_ops(arch):
    from torchvision import models as tvm

    weights = {"resnet18": tvm.ResNet18_Weights, "mobilenet_v2": tvm.MobileNet_V2_Weights}[arch].IMAGENET1K_V1
    macs = benchmark.count_macs(models.build(arch, 1000), torch.zeros(1, 3, 224, 224))
    assert macs / 1e9 == pytest.approx(weights.meta["_ops"], abs=0.001)


def test_macs_of_quantized_modules_equal_their_float_model():
    from torch.ao.quantization import get_default_qconfig_mapping, quantize_dynamic
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    x = torch.randn(2, 3, 8, 8)
    float_model = tiny_model(3).eval()
    prepared = prepare_fx(float_model, get_default_qconfig_mapping("x86"), (x,))
    prepared(x)
    q = convert_fx(prepared)
    assert any("quantized" in type(m).__module__ for m in q.modules())
    assert benchmark.count_macs(q, x) == benchmark.count_macs(float_model, x)

    lstm = models.build("lstm", 10).eval()
    qlstm = quantize_dynamic(lstm, {nn.LSTM, nn.Linear}, dtype=torch.qint8)
    assert type(qlstm.lstm).__module__.startswith("torch.ao.nn.quantized.dynamic")
    assert benchmark.count_macs(qlstm, torch.zeros(1, 3, 8, 8)) == benchmark.count_macs(lstm, torch.zeros(1, 3, 8, 8))


def test_summary_percentiles_and_throughput():
    s = benchmark.summary(np.arange(1, 101, dtype=float), batch=4)
    assert s["latency_ms_p50"] == pytest.approx(50.5)
    assert s["latency_ms_p90"] == pytest.approx(90.1)
    assert s["latency_ms_p99"] == pytest.approx(99.01)
    assert s["throughput_ips"] == pytest.approx(4 * 1000 / 50.5)
    with pytest.raises(Exception, match="iters"):
        benchmark.summary([], batch=1)


def test_time_interleaved_takes_turns_in_blocks():
    calls = []
    fns = {"a": lambda x: calls.append("a"), "b": lambda x: calls.append("b")}
    times = benchmark.time_interleaved(fns, torch.zeros(1), warmup=1, iters=5, block=2, settle_s=0)
    # turn 1: 1 warm-up + 2 timed each; later turns: 1 untimed call (settle_s=0) + the rest of the block
    assert "".join(calls) == "aaa" + "bbb" + "aaa" + "bbb" + "aa" + "bb"
    assert {k: len(v) for k, v in times.items()} == {"a": 5, "b": 5}
    assert benchmark.peak_rss_mib() > 10


def test_alternating_turns_settle_for_a_while_before_timing():
    import time

    from compressflow import evaluate

    calls = []

    def fn(_):
        calls.append(1)
        time.sleep(0.002)

    times = evaluate.time_alternating({"x": fn}, torch.zeros(1), warmup=4, iters=25, block=10, settle_s=0.02)
    assert len(times["x"]) == 25
    untimed = len(calls) - 25
    assert 4 + 2 * 5 <= untimed <= 4 + 2 * 11, "each later turn runs about settle_s / 2 ms of untimed calls"


def test_benchmark_artifact_rule_on_tiny_run(tiny_copy):
    """The real rule for one quantized PyTorch artifact: one JSON with a row per batch size."""
    target = "results/benchmarks/resnet18/ptq-x86/pytorch.json"
    (tiny_copy / target).unlink()  # the tiny run made it; the rule must make it again
    snakemake(tiny_copy, "--cores", "1", target)
    rec = json.loads((tiny_copy / target).read_text())
    assert rec["precision"] == "int8"
    assert [b["batch"] for b in rec["batches"]] == [1, 2]
    fp32 = benchmark.count_macs(models.build("resnet18", 10), torch.zeros(1, 3, 32, 32))
    assert rec["macs"] == fp32 and rec["params"] > 1e7
    assert all(b["latency_ms_p50"] > 0 and b["peak_rss_mib"] > 50 for b in rec["batches"])
    assert rec["versions"]["torch"] and rec["cpu_model"]
