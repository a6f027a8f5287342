"""Unit tests of compressflow.quantize on a tiny conv net, a tiny LSTM and 16 px inputs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.ao import quantization as tq
from torch.ao.nn.quantized import dynamic as nnqd

from compressflow import artifacts, data, files, models, recipes
from compressflow import evaluate as ev
from compressflow.errors import CompressflowError
from compressflow.quantize import dynamic, error, graph, mixed, qat, qconfig, rebuild, static, units
from compressflow.steps.ptq import ptq as ptq_step
from compressflow.steps.ptq_calibrate import ptq_calibrate as ptq_calibrate_step

torch.set_num_threads(1)
SIZE = 16


class TinyNet(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.conv2(x))
        return self.fc(torch.flatten(self.pool(x), 1))


class NoLayers(nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3))


def tiny_model():
    torch.manual_seed(0)
    m = TinyNet().eval()
    with torch.no_grad():  # non-trivial BN statistics so fusion matters
        m.bn1.running_mean.uniform_(-0.2, 0.2)
        m.bn1.running_var.uniform_(0.5, 2.0)
    return m


@pytest.fixture(autouse=True)
def tiny_arch(monkeypatch):
    """Register the tiny net as an architecture so artifacts.load_model can rebuild it."""
    monkeypatch.setitem(models.ARCHS, "tiny", lambda num_classes, **_: TinyNet(num_classes))


def split(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "x": torch.randint(0, 256, (n, 3, SIZE, SIZE), generator=g, dtype=torch.uint8),
        "y": torch.randint(0, 10, (n,), generator=g),
        "classes": [str(i) for i in range(10)],
    }


def batch():
    return data.to_input(split(8, seed=1)["x"])


def ptq(model, observer="minmax", activation="affine", per_channel=True, backend="x86"):
    spec = qconfig.qconfig_spec(backend, observer, activation, per_channel)
    prepared = graph.prepare(model, spec, SIZE)
    graph.calibrate(prepared, split(), 32)
    return spec, prepared


@pytest.mark.parametrize("observer", qconfig.OBSERVERS)
@pytest.mark.parametrize("activation", qconfig.ACTIVATIONS)
def test_ptq_observers_close_to_float(observer, activation):
    model = tiny_model()
    _, prepared = ptq(model, observer, activation)
    q = graph.convert(prepared)
    x = batch()
    with torch.no_grad():
        ref, out = model(x), q(x)
    assert error.sqnr_db(ref, out) > 15, "INT8 logits should track the float logits"
    assert graph.quantized_layers(q) == ["conv1", "conv2", "fc"]


def test_percentile_clips_range():
    obs_h = tq.HistogramObserver(reduce_range=False)
    obs_p = qconfig.PercentileObserver(percentile=99.0, reduce_range=False)
    x = torch.cat([torch.rand(10000), torch.tensor([50.0])])
    obs_h(x)
    obs_p(x)
    scale_p, _ = obs_p.calculate_qparams()
    assert scale_p.item() * 255 < 2.0, "the 50.0 outlier must be clipped away"
    assert obs_h.max_val.item() == 50.0


def test_symmetric_activation_zero_point_128():
    _, prepared = ptq(tiny_model(), "minmax", "symmetric")
    table = static.observer_table(prepared)
    assert table and all(row["zero_point"] == 128 for row in table)
    _, prepared = ptq(tiny_model(), "minmax", "affine")
    assert static.observer_table(prepared)[0]["zero_point"] != 128


def test_per_channel_vs_per_tensor_weights():
    q_pc = graph.convert(ptq(tiny_model(), per_channel=True)[1])
    q_pt = graph.convert(ptq(tiny_model(), per_channel=False)[1])
    assert q_pc.conv1.weight().qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric)
    assert q_pc.conv1.weight().q_per_channel_scales().numel() == 8
    assert q_pt.conv1.weight().qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric)


@pytest.mark.parametrize("backend", qconfig.BACKENDS)
def test_round_trip_identical_logits(tmp_path, backend):
    model = tiny_model()
    spec, prepared = ptq(model, "histogram", backend=backend)
    recipe = recipes.base_recipe("tiny", 10)
    artifacts.save_model(
        prepared, recipes.with_transform(recipe, rebuild.transform("ptq", spec, SIZE, stage="prepared")), tmp_path / "cal.pt"
    )
    q = graph.convert(prepared)
    artifacts.save_model(q, recipes.with_transform(recipe, rebuild.transform("ptq", spec, SIZE)), tmp_path / "model.pt")
    torch.backends.quantized.engine = "qnnpack" if backend != "qnnpack" else "x86"
    loaded, _ = artifacts.load_model(tmp_path / "model.pt")
    assert torch.backends.quantized.engine == backend
    x = batch()
    assert torch.equal(loaded(x), q(x))
    cal, _ = artifacts.load_model(tmp_path / "cal.pt")
    assert torch.equal(graph.convert(cal)(x), q(x)), "the calibrated file must carry the observer statistics"


def test_bias_correction_changes_bias_and_keeps_round_trip(tmp_path):
    model = tiny_model()
    spec, prepared = ptq(model, "minmax", per_channel=False)
    q = graph.convert(prepared)
    before = q.conv2.bias().clone()
    done = static.bias_correct(q, prepared, split(), 32)
    assert [d["layer"] for d in done] == ["conv1", "conv2", "fc"]
    assert not torch.equal(before, q.conv2.bias())
    artifacts.save_model(
        q, recipes.with_transform(recipes.base_recipe("tiny", 10), rebuild.transform("ptq", spec, SIZE)), tmp_path / "m.pt"
    )
    loaded, _ = artifacts.load_model(tmp_path / "m.pt")
    assert torch.equal(loaded(batch()), q(batch()))


def test_dynamic_lstm_round_trip_weights_only(tmp_path):
    torch.manual_seed(0)
    model = models.build("lstm", 10, hidden=16).eval()
    q, names = dynamic.quantize_dynamic(model)
    assert names == ["lstm", "fc"]
    assert isinstance(q.lstm, nnqd.LSTM) and isinstance(q.fc, nnqd.Linear)
    recipe = recipes.base_recipe("lstm", 10, {"hidden": 16})
    t = {"kind": "quantize", "mode": "dynamic", "stage": "converted", "backend": "x86", "dtype": "qint8", "layer_types": ["Linear", "LSTM"]}
    artifacts.save_model(q, recipes.with_transform(recipe, t), tmp_path / "d.pt")
    loaded, _ = artifacts.load_model(tmp_path / "d.pt")  # weights_only=True inside
    x = batch()
    assert torch.equal(loaded(x), q(x))
    assert (q(x) - model(x)).abs().max() < 0.05
    # the packed LSTM weights count like the float ones they replace
    assert models.count_params(q) == models.count_params(model) == models.count_params(loaded)


def test_dynamic_on_convnet_quantizes_only_linear():
    q, names = dynamic.quantize_dynamic(tiny_model())
    assert names == ["fc"]
    assert isinstance(q.conv1, nn.Conv2d)


def test_layer_error_rows():
    model = tiny_model()
    spec, prepared = ptq(model)
    q = graph.convert(prepared)
    reference = graph.prepare(model, spec, SIZE)
    rows = error.layer_error(reference, q, batch())
    assert [r["layer"] for r in rows] == ["conv1", "conv2", "fc"]
    assert all(r["mse"] >= 0 and r["sqnr_db"] > 10 for r in rows)
    assert error.sqnr_db(torch.ones(3), torch.ones(3)) == math.inf


def test_layer_error_with_in_place_relu_after_an_unfused_conv():
    """A BN-folded parent leaves conv1 -> Identity -> ReLU(inplace): the capture must not see the ReLU."""
    model = tiny_model()
    model.bn1, model.relu = nn.Identity(), nn.ReLU(inplace=True)
    spec, prepared = ptq(model)
    rows = error.layer_error(graph.prepare(model, spec, SIZE), graph.convert(prepared), batch())
    assert min(r["sqnr_db"] for r in rows) > 10, rows


def test_sensitivity_and_mixed_precision():
    model = tiny_model()
    spec = qconfig.qconfig_spec("x86", "minmax")
    calib, val = split(32), split(32, seed=2)
    build, names = graph.builder(model, spec, calib, 32), units.quantizable_units(model)
    rows = mixed.sensitivity(model, build, val, names)
    assert [r["layer"] for r in rows] == ["conv1", "conv2", "fc"]
    # An impossible budget: the best model is returned, at least one layer stays INT8, and the report says so.
    fake = [{"layer": "fc", "top1_delta": -0.5, "sqnr_db": 1.0}, {"layer": "conv1", "top1_delta": 0.0, "sqnr_db": 40.0}]
    q, info = mixed.mixed_precision(model, build, val, names, fake, max_accuracy_drop=-1.0, keep_first_last=False)
    assert info["budget_met"] is False and "budget not met" in info["note"]
    assert [len(t["fp32_layers"]) for t in info["trials"]] == [0, 1, 2]
    assert info["trials"][1]["fp32_layers"] == ["fc"], "the most sensitive layer goes FP32 first"
    assert graph.quantized_layers(q)
    q, info = mixed.mixed_precision(model, build, val, names, rows, max_accuracy_drop=1.0, keep_first_last=True)
    assert info["budget_met"] and info["fp32_layers"] == ["conv1", "fc"]
    assert graph.quantized_layers(q) == ["conv2"]


def test_units_are_blocks_and_a_float_block_keeps_its_residual_add_float():
    from torchvision.models import resnet18

    model = resnet18(num_classes=10).eval()
    names = units.quantizable_units(model)
    assert names == ["conv1"] + [f"layer{i}.{j}" for i in range(1, 5) for j in (0, 1)] + ["fc"]
    spec = qconfig.qconfig_spec("x86", "minmax")

    def int8_adds(q):
        return sum(1 for n in q.graph.nodes if n.op == "call_function" and "quantized.add" in str(n.target))

    only_block = graph.build_static(model, spec, split(8), 8, only_layers=["layer1.0"])
    assert graph.quantized_layers(only_block) == ["layer1.0.conv1", "layer1.0.conv2"] and int8_adds(only_block) == 1
    all_but_block = graph.build_static(model, spec, split(8), 8, fp32_layers=["layer1.0"])
    assert int8_adds(all_but_block) == 7 and not any(n.startswith("layer1.0.") for n in graph.quantized_layers(all_but_block))


def test_mixed_precision_gives_units_back_to_int8_when_the_budget_allows(monkeypatch):
    """Forward adds fc then conv2 (budget met only with conv2 FP32); backward finds fc can go back to INT8."""
    val = split(20, seed=3)

    class Fake(nn.Module):
        def __init__(self, fp32):
            super().__init__()
            self.fp32 = list(fp32)

    def predict(model, split_):
        y = split_["y"]
        wrong = isinstance(model, Fake) and "conv2" not in model.fp32
        labels = (y + 1) % 10 if wrong else y
        return torch.nn.functional.one_hot(labels, 10).float()

    def build(fp32_layers=(), only_layers=None):
        return Fake(fp32_layers), Fake(fp32_layers)

    monkeypatch.setattr(ev, "predict", predict)
    rows = [{"layer": "fc", "top1_delta": -0.5, "sqnr_db": 1.0}, {"layer": "conv2", "top1_delta": -0.1, "sqnr_db": 5.0}]
    q, info = mixed.mixed_precision(tiny_model(), build, val, ["conv1", "conv2", "fc"], rows, max_accuracy_drop=0.0, keep_first_last=False)
    assert [t["fp32_layers"] for t in info["trials"]] == [[], ["fc"], ["fc", "conv2"], ["conv2"]]
    assert info["budget_met"] and info["fp32_layers"] == ["conv2"] == q.fp32
    assert info["int8_layers"] == ["conv1", "fc"]


def test_mixed_round_trip(tmp_path):
    model = tiny_model()
    spec = qconfig.qconfig_spec("x86", "minmax")
    q = graph.build_static(model, spec, split(), 32, fp32_layers=["fc"])
    assert isinstance(q.fc, nn.Linear)
    t = rebuild.transform("mixed", spec, SIZE, fp32_layers=["fc"])
    artifacts.save_model(q, recipes.with_transform(recipes.base_recipe("tiny", 10), t), tmp_path / "m.pt")
    loaded, _ = artifacts.load_model(tmp_path / "m.pt")
    assert torch.equal(loaded(batch()), q(batch()))


def test_qat_round_trip(tmp_path):
    model = tiny_model()
    spec = qconfig.qconfig_spec("x86", "moving_average")
    prepared = graph.prepare(model, spec, SIZE, qat=True)
    before = prepared.conv1.weight.detach().clone()
    qat.fine_tune_qat(prepared, split(), epochs=1, lr=0.01, batch_size=16, seed=0, freeze_observers_epoch=0, freeze_bn_epoch=0)
    assert not torch.equal(before, prepared.conv1.weight), "QAT must update the weights"
    assert all(not m.observer_enabled.item() for m in prepared.modules() if isinstance(m, tq.FakeQuantizeBase))
    assert prepared.conv1.freeze_bn
    q = graph.convert(prepared)
    artifacts.save_model(
        q, recipes.with_transform(recipes.base_recipe("tiny", 10), rebuild.transform("qat", spec, SIZE)), tmp_path / "q.pt"
    )
    loaded, _ = artifacts.load_model(tmp_path / "q.pt")
    assert torch.equal(loaded(batch()), q(batch()))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"backend": "arm"}, "unknown backend 'arm'"),
        ({"observer": "entropy"}, "unknown observer 'entropy'"),
        ({"activation": "asym"}, "unknown activation 'asym'"),
    ],
)
def test_unknown_choices_are_one_line_errors(kwargs, match):
    with pytest.raises(CompressflowError, match=match) as err:
        qconfig.qconfig_spec(**kwargs)
    assert "\n" not in str(err.value)


def test_calib_size_larger_than_split():
    spec = qconfig.qconfig_spec("x86", "minmax")
    prepared = graph.prepare(tiny_model(), spec, SIZE)
    with pytest.raises(CompressflowError, match="calib_size=100 but the calib split has 48 images"):
        graph.calibrate(prepared, split(48), 100)


def test_no_quantizable_layers():
    with pytest.raises(CompressflowError, match="no quantizable layers"):
        graph.prepare(NoLayers(), qconfig.qconfig_spec(), SIZE)
    with pytest.raises(CompressflowError, match="no Linear/LSTM layers"):
        dynamic.quantize_dynamic(NoLayers())


def test_steps_calibrate_then_convert(tmp_path):
    """The two PTQ steps as the rules call them: convert reads only its own knob."""
    model = tiny_model()
    artifacts.save_model(model, recipes.base_recipe("tiny", 10), tmp_path / "parent.pt")
    files.save_tensors(split(), tmp_path / "calib.pt")
    out = {"calibrated": tmp_path / "v/calibrated.pt", "calibration": tmp_path / "v/calibration.json"}
    params = {
        "backend": "x86",
        "observer": "percentile",
        "activation": "affine",
        "per_channel": True,
        "calib_size": 32,
        "percentile": 99.9,
        "device": "cpu",
    }
    ptq_calibrate_step({"model": tmp_path / "parent.pt", "calib": tmp_path / "calib.pt"}, out, params, 1)
    info = files.read_json(out["calibration"])
    assert info["calib_images"] == 32 and info["observers"][0]["kind"] == "PercentileObserver"
    for bc in (False, True):
        ptq_step(
            {"calibrated": out["calibrated"], "calib": tmp_path / "calib.pt"}, {"model": tmp_path / f"m{bc}.pt"}, {"bias_correction": bc}, 1
        )
        q, recipe = artifacts.load_model(tmp_path / f"m{bc}.pt")
        t = recipe["transforms"][-1]
        assert t["stage"] == "converted" and t["bias_correction"] is bc and t["qconfig"]["observer"] == "percentile"
    params["calib_size"] = 49
    with pytest.raises(CompressflowError, match="calib_size=49"):
        ptq_calibrate_step({"model": tmp_path / "parent.pt", "calib": tmp_path / "calib.pt"}, out, params, 1)


def test_untraceable_model_names_the_technique_that_asked():
    """A model symbolic_trace cannot trace is unsupported for the technique that asked, with that technique's fix."""
    from torch import nn

    from compressflow.unsupported import Unsupported

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(x) if x.sum() > 0 else -self.fc(x)  # data-dependent: not traceable

    with pytest.raises(Unsupported, match=r"^torch.ao FX quantization does not support Branchy.*runtime INT8 rows"):
        units.quantizable_units(Branchy())
    with pytest.raises(Unsupported, match=r"^mixed_pt2e does not support Branchy.*fix: use ptq_pt2e"):
        units.quantizable_units(Branchy(), technique="mixed_pt2e")


FX_PREPARE_WITHOUT_DYNAMO = """
import sys, torch, torch.fx.config
from compressflow import models
from compressflow.quantize import graph, qconfig
prepared = graph.prepare(models.build("resnet18", 10).eval(), qconfig.qconfig_spec("x86", "minmax", "affine", True), 32)
assert any("observer" in type(m).__name__.lower() for m in prepared.modules()), "no observer inserted"
assert "torch._dynamo" not in sys.modules, "FX prepare imported torch._dynamo"
assert torch.fx.config.do_not_emit_stack_traces is False, "the stack-trace switch was not restored"
"""


def test_fx_prepare_skips_the_dynamo_import_and_restores_the_fx_config():
    """Rebuilding an FX artifact (every job that loads one) does not pay torch._dynamo's ~1.2 s import for stack traces."""
    import subprocess
    import sys

    from tests.conftest import REPO

    out = subprocess.run([sys.executable, "-c", FX_PREPARE_WITHOUT_DYNAMO], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
