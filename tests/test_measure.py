"""compressflow.measure: MAC counting (float and torch.ao quantized, against Torch-Pruning), percentiles, the timing loop."""

import time

import numpy as np
import pytest
import torch
from torch import nn

from compressflow import measure, models
from compressflow.errors import CompressflowError
from tests.conftest import tiny_model


def test_macs_of_tiny_conv_net_match_hand_count():
    # conv1: 8 out ch * 4*4 px * (3*3*3) = 3456; conv2: 8*16 * (8*3*3) = 9216; linear: 3 * 8 = 24
    assert measure.count_macs(tiny_model(3), torch.zeros(1, 3, 4, 4)) == 3456 + 9216 + 24
    assert measure.count_macs(tiny_model(3), torch.zeros(2, 3, 4, 4)) == 2 * (3456 + 9216 + 24)


def test_macs_of_grouped_conv_and_lstm():
    dw = nn.Conv2d(4, 4, 3, padding=1, groups=4)  # 4 ch * 25 px * (1*3*3)
    assert measure.count_macs(dw, torch.zeros(1, 4, 5, 5)) == 900
    lstm = models.build("lstm", 10)  # 8 steps x 4 gates x 64 x (8 + 64), then fc 64 -> 10
    assert measure.count_macs(lstm, torch.zeros(1, 3, 8, 8)) == 8 * 4 * 64 * (8 + 64) + 640


def test_counting_keeps_the_train_mode():
    model = tiny_model(3).train()
    measure.count_macs(model, torch.zeros(1, 3, 4, 4))
    assert model.training


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2"])
def test_macs_match_torchvision_published_ops(arch):
    from torchvision import models as tvm

    weights = {"resnet18": tvm.ResNet18_Weights, "mobilenet_v2": tvm.MobileNet_V2_Weights}[arch].IMAGENET1K_V1
    macs = measure.count_macs(models.build(arch, 1000), torch.zeros(1, 3, 224, 224))
    assert macs / 1e9 == pytest.approx(weights.meta["_ops"], abs=0.001)


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2"])
def test_macs_agree_with_torch_pruning_on_what_both_call_macs(arch):
    """Torch-Pruning's ``count_ops_and_params`` counts operations, not MACs.

    Beside each Conv/Linear layer's multiply-accumulates it adds one op per bias add, two per
    BatchNorm element, one per activation output and one per pooled input element. So: on the
    Conv/Linear layers, less their bias adds, the two counts agree exactly; the totals differ by
    exactly Torch-Pruning's BatchNorm, activation and pooling ops; parameter counts agree exactly.
    """
    import torch_pruning as tp

    model = models.build(arch, 10).eval()
    x = torch.zeros(1, 3, 32, 32)
    with torch.no_grad():
        ops, params, layer_ops, _ = tp.utils.count_ops_and_params(model, x, layer_wise=True)
    leaves = [m for m in model.modules() if not list(m.children())]
    mac_layers = [m for m in leaves if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert all(m.bias is None for m in mac_layers if isinstance(m, nn.Conv2d))  # conv biases are folded into BN here
    bias_adds = sum(m.out_features for m in mac_layers if isinstance(m, nn.Linear) and m.bias is not None)
    ours = measure.count_macs(model, x)
    assert sum(layer_ops[m] for m in mac_layers) - bias_adds == ours

    extra = {}
    for m in leaves:
        if m not in mac_layers and layer_ops.get(m):
            extra[type(m).__name__] = extra.get(type(m).__name__, 0) + layer_ops[m]
    assert set(extra) <= {"BatchNorm2d", "ReLU", "ReLU6", "MaxPool2d", "AdaptiveAvgPool2d"}
    assert ops == ours + bias_adds + sum(extra.values())
    assert params == models.count_params(model)


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
    assert measure.count_macs(q, x) == measure.count_macs(float_model, x)

    lstm = models.build("lstm", 10).eval()
    qlstm = quantize_dynamic(lstm, {nn.LSTM, nn.Linear}, dtype=torch.qint8)
    assert type(qlstm.lstm).__module__.startswith("torch.ao.nn.quantized.dynamic")
    assert measure.count_macs(qlstm, torch.zeros(1, 3, 8, 8)) == measure.count_macs(lstm, torch.zeros(1, 3, 8, 8))


def test_summary_percentiles_and_throughput():
    s = measure.summary(np.arange(1, 101, dtype=float), batch=4)
    assert s == pytest.approx({"latency_ms_p50": 50.5, "latency_ms_p90": 90.1, "throughput_ips": 4 * 1000 / 50.5})
    tail = measure.summary(np.arange(1, 101, dtype=float), batch=4, tail=True)
    assert tail == pytest.approx(dict(s, latency_ms_p99=99.01, latency_ms_mean=50.5))


def test_summary_of_no_timings_names_the_fix():
    with pytest.raises(CompressflowError, match=r"^no timed iterations; fix: set latency.iters and benchmark.iters to at least 1$"):
        measure.summary([], batch=1)


def test_alternating_takes_turns_in_blocks():
    calls = []
    fns = {"a": lambda x: calls.append("a"), "b": lambda x: calls.append("b")}
    times = measure.time_alternating(fns, torch.zeros(1), warmup=1, iters=5, block=2, settle_s=0)
    # turn 1: 1 warm-up + 2 timed each; later turns: 1 untimed call (settle_s=0) + the rest of the block
    assert "".join(calls) == "aaa" + "bbb" + "aaa" + "bbb" + "aa" + "bb"
    assert {k: len(v) for k, v in times.items()} == {"a": 5, "b": 5}


def test_alternating_turns_settle_for_a_while_before_timing():
    calls = []

    def fn(_):
        calls.append(1)
        time.sleep(0.002)

    times = measure.time_alternating({"x": fn}, torch.zeros(1), warmup=4, iters=25, block=10, settle_s=0.02)
    assert len(times["x"]) == 25
    untimed = len(calls) - 25
    assert 4 + 2 * 5 <= untimed <= 4 + 2 * 11, "each later turn runs about settle_s / 2 ms of untimed calls"


def test_one_callable_is_warmed_then_timed_in_a_row_without_autograd():
    calls = []

    def fn(x):
        calls.append(torch.is_grad_enabled())
        time.sleep(0.001)

    times = measure.time_calls(fn, torch.zeros(1), warmup=3, iters=7)
    assert len(calls) == 10 and len(times) == 7 and not any(calls)  # no settle calls between timed ones
    assert all(t >= 1.0 for t in times)
    lat = measure.latency(lambda t: t * 2, torch.ones(2, 3), warmup=1, iters=5)
    assert 0 < lat["latency_ms_p50"] <= lat["latency_ms_p90"] and lat["throughput_ips"] > 0


def test_latency_pair_races_two_callables():
    a, b = measure.latency_pair(lambda _: time.sleep(0.001), lambda _: time.sleep(0.004), torch.zeros(1), warmup=1, iters=5)
    assert b["latency_ms_p50"] > a["latency_ms_p50"] >= 1.0


def test_peak_rss_and_size(tmp_path):
    assert measure.peak_rss_mib() > 10
    (tmp_path / "a").write_bytes(b"x" * 2**20)
    (tmp_path / "b").write_bytes(b"x" * 2**19)
    assert measure.size_mb(tmp_path / "a", tmp_path / "b") == 1.5
