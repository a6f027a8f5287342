"""PT2E INT8 (the successor of torch.ao FX), torch.compile and AOTInductor: fast unit tests on a tiny block."""

import importlib
from pathlib import Path

import pytest
import torch
from torch import nn

from compressflow import artifacts, recipes
from compressflow.errors import CompressflowError
from compressflow.quantize import pt2e
from compressflow.runtimes import pytorch

SIZE = 16


class Block(nn.Module):
    """torchvision's BasicBlock pattern: one ReLU module called after conv1 and after the residual add."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(x)) + x)
        return self.fc(out.mean((2, 3)))


def _block():
    torch.manual_seed(0)
    return Block().eval()


def _calib(n=16):
    g = torch.Generator().manual_seed(1)
    return {"x": torch.randn(n, 3, SIZE, SIZE, generator=g), "y": torch.randint(0, 10, (n,), generator=g)}


def _quantized(model, **kw):
    prepared = pt2e.prepare(model, SIZE, **kw)
    pt2e.calibrate(prepared, _calib(), 16)
    return prepared, pt2e.convert(prepared)


def test_repeated_module_call_is_untied_and_quantized():
    """Without untying, the quantizer refuses the block ('more than one output node'); with it, Q/DQ go in."""
    gm = torch.export.export(_block(), (pt2e.example_input(SIZE),)).module()
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    with pytest.raises(ValueError, match="more than one output node"):
        prepare_pt2e(gm, pt2e.quantizer())
    prepared, q = _quantized(_block())
    assert pt2e.untied_calls(prepared) == ["relu@1"]
    assert pt2e.count_qdq(q) > 0


def test_resnet18_basic_blocks_are_untied():
    from compressflow import models

    calls = pt2e.untied_calls(pt2e.export(models.build("resnet18", 10), SIZE))
    assert calls == sorted(f"layer{i}.{j}.relu@1" for i in range(1, 5) for j in range(2))


def test_no_qdq_inserted_is_an_error():
    """A graph the quantizer leaves alone must not pass as INT8."""
    pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    prepared = pt2e.prepare(pool, SIZE)
    with pytest.raises(CompressflowError, match="no quantize/dequantize"):
        pt2e.convert(prepared)


def test_fp32_layers_stay_float():
    """Mixed precision the PT2E way: set_module_name_qconfig(name, None) keeps a layer float."""
    _, full = _quantized(_block())
    _, mixed = _quantized(_block(), fp32_layers=["fc"])
    assert 0 < pt2e.count_qdq(mixed) < pt2e.count_qdq(full)


def _save_and_reload(prepared, t, tmp_path):
    """Save as the workflow does (recipe + the prepared graph's state), load weights-only, convert."""
    base = recipes.base_recipe("resnet18", 10)  # the recipe's arch is not used: the block is rebuilt below
    path = tmp_path / "model.pt"
    artifacts.save_model(prepared, recipes.with_transform(base, t), path)
    # Rebuild from the same float block (a real run rebuilds it from the recipe's arch).
    rebuilt = pt2e.rebuild(_block(), t)
    recipes.load_state(rebuilt, torch.load(path, weights_only=True)["state_dict"], str(path))
    return recipes.finish(rebuilt, recipes.with_transform(base, t))


def test_only_layers_quantizes_only_that_unit():
    """Per-unit sensitivity the PT2E way: no global config, set_module_name_qconfig(unit, config) for one unit."""
    _, full = _quantized(_block())
    _, only_fc = _quantized(_block(), only_layers=["fc"])
    _, no_fc = _quantized(_block(), fp32_layers=["fc"])
    assert pt2e.count_qdq(only_fc) > 0 and pt2e.count_qdq(only_fc) + pt2e.count_qdq(no_fc) == pt2e.count_qdq(full)


def test_builder_exports_once_and_builds_what_build_builds(monkeypatch):
    model, calib, x = _block(), _calib(), _calib(4)["x"]
    exports = []
    real = pt2e.export
    monkeypatch.setattr(pt2e, "export", lambda *a, **k: exports.append(1) or real(*a, **k))
    build = pt2e.builder(model, calib, 16, SIZE)
    (a, _), (b, _) = build(fp32_layers=["fc"]), build(only_layers=["conv2"])
    assert len(exports) == 1
    ref_a, _ = pt2e.build(model, calib, 16, SIZE, fp32_layers=["fc"])
    ref_b, _ = pt2e.build(model, calib, 16, SIZE, only_layers=["conv2"])
    with torch.no_grad():
        assert torch.equal(a(x), ref_a(x)) and torch.equal(b(x), ref_b(x))
    assert pt2e.count_qdq(a) == pt2e.count_qdq(ref_a) and pt2e.count_qdq(b) == pt2e.count_qdq(ref_b) != pt2e.count_qdq(a)


def test_mixed_pt2e_search_keeps_units_float_and_the_artifact_reloads(tmp_path):
    """The successor of ``mixed``: PT2E sensitivity per unit, the greedy search, and a weights-only artifact."""
    from compressflow import evaluate as ev
    from compressflow.quantize import mixed, units

    model, calib, val = _block(), _calib(), _calib(24)
    build = pt2e.builder(model, calib, 16, SIZE)
    names = units.quantizable_units(model, technique="mixed_pt2e")
    rows = mixed.sensitivity(model, build, val, names, ev.predict(model, val))
    assert rows == mixed.sensitivity(model, build, val, names)
    assert [r["layer"] for r in rows] == names == ["conv1", "conv2", "fc"]
    prepared, info = mixed.mixed_precision(model, build, val, names, rows, max_accuracy_drop=1.0, keep_first_last=True)
    assert info["budget_met"] and info["fp32_layers"] == ["conv1", "fc"] and info["int8_layers"] == ["conv2"]
    _, bad = mixed.mixed_precision(model, build, val, names, rows, max_accuracy_drop=-1.0, keep_first_last=False)
    assert bad["budget_met"] is False and "budget not met" in bad["note"] and len(bad["int8_layers"]) >= 1
    t = pt2e.transform(SIZE, qat=False, reduce_range=False, fp32_layers=info["fp32_layers"], calib_size=16)
    x = _calib(4)["x"]
    with torch.no_grad():
        assert torch.equal(pt2e.convert(prepared)(x), _save_and_reload(prepared, t, tmp_path)(x))


NO_FX = """
import sys, importlib.abc
import torch
for k in [k for k in sys.modules if k.startswith("torch.ao.quantization.quantize_fx")]:
    del sys.modules[k]
class NoFX(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.startswith("torch.ao.quantization.quantize_fx"):
            raise ImportError("torch.ao.quantization FX removed (simulated): " + name)
sys.meta_path.insert(0, NoFX())
from compressflow.steps import mixed_pt2e, ptq_pt2e, qat_pt2e
from tests.test_pt2e import _block, _calib, SIZE
from compressflow.quantize import pt2e
q, _ = pt2e.build(_block(), _calib(), 16, SIZE, fp32_layers=["fc"])
assert pt2e.count_qdq(q) > 0
assert not [m for m in sys.modules if m == "compressflow.quantize.graph"], "PT2E imported the FX module"
print("pt2e without torch.ao FX: ok")
"""


def test_pt2e_techniques_work_without_torch_ao_fx():
    """The successor path must not lean on what it replaces: with torch.ao's FX API made unimportable,
    the PT2E steps import and build. (Today ``steps/ptq_pt2e.py`` importing ``quantize.graph`` fails this.)"""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", NO_FX], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]


def test_artifact_reloads_weights_only_with_parity(tmp_path):
    prepared, q = _quantized(_block())
    base = recipes.base_recipe("resnet18", 10)
    t = pt2e.transform(SIZE, qat=False, reduce_range=False, calib_size=16)
    x = _calib(4)["x"]
    with torch.no_grad():
        assert torch.equal(q(x), _save_and_reload(prepared, t, tmp_path)(x))
    assert pytorch.api(recipes.with_transform(base, t)) == "pt2e"
    assert pytorch.precision(recipes.with_transform(base, t)) == "int8"


def test_saved_program_is_byte_identical_and_reloads():
    _, q1 = _quantized(_block())
    _, q2 = _quantized(_block())
    b1, b2 = pt2e.program_bytes(q1, SIZE), pt2e.program_bytes(q2, SIZE)
    assert b1 == b2
    import io

    ep = torch.export.load(io.BytesIO(b1))
    x = _calib(3)["x"]  # another batch size than the export example: the batch is dynamic
    with torch.no_grad():
        assert torch.allclose(ep.module()(x), q1(x), atol=1e-5)


@pytest.mark.slow  # minutes on a loaded 2-core machine
def test_qat_pt2e_trains_and_converts():
    prepared = pt2e.prepare(_block(), SIZE, qat=True)
    history = pt2e.fine_tune_qat(prepared, _calib(32), epochs=1, lr=0.01, batch_size=16, seed=0, warmup_images=16)
    assert len(history) == 1
    assert pt2e.count_qdq(pt2e.convert(prepared)) > 0


def test_torch_ao_fx_still_importable():
    """Fails the day the pinned torch drops torch.ao.quantization: move PTQ/QAT/mixed to ptq_pt2e/qat_pt2e/mixed_pt2e."""
    try:
        importlib.import_module("torch.ao.quantization.quantize_fx")
    except ImportError as exc:
        pytest.fail(
            f"torch.ao.quantization FX is gone from this torch ({exc}): the techniques ptq, qat, mixed and dynamic "
            "cannot build; use their successors ptq_pt2e / qat_pt2e / mixed_pt2e, see docs/techniques.md"
        )


def _tiny_compiled_parity(tmp_path):
    from compressflow.runtimes import compile as pt2

    model, x = _block(), _calib(2)["x"]
    with pt2.cache_dir(tmp_path / "inductor"):
        compiled, seconds = pt2.compile_model(model, x, 1)
        with torch.no_grad():
            assert torch.allclose(compiled(x), model(x), atol=1e-4)
    assert seconds > 0


@pytest.mark.slow
def test_torch_compile_and_aoti_package_parity(tmp_path):
    """torch.compile (freezing) and an AOTInductor package give the eager logits, at another batch size too."""
    from compressflow.runtimes import compile as pt2

    _tiny_compiled_parity(tmp_path)
    model = _block()
    with pt2.cache_dir(tmp_path / "inductor"):
        pt2.aoti_package(model, pt2e.example_input(SIZE), tmp_path / "model.pt2")
        run = pt2.aoti_load(tmp_path / "model.pt2", 1)
        x = torch.randn(3, 3, SIZE, SIZE)  # another batch size than the package was built with
        with torch.no_grad():
            assert torch.allclose(run(x), model(x), atol=1e-4)
    assert not any((tmp_path / n).exists() for n in ("torchinductor", ".cache")), "inductor cache leaked"


@pytest.mark.slow  # g++ on the libtorch headers: ~15 s, plus an AOTInductor package
def test_cpp_loader_runs_a_package(tmp_path):
    """docs/aoti/load_package.cpp, built with the g++ line its header documents, loads a package without
    Python and prints the argmax the package gives in Python."""
    import os
    import re
    import shutil
    import subprocess

    from compressflow.runtimes import compile as pt2
    from tests.conftest import REPO

    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    src = REPO / "docs" / "aoti" / "load_package.cpp"
    line = " ".join(x.strip().lstrip("/").strip().rstrip("\\") for x in src.read_text().splitlines()[3:5])
    assert line.startswith("g++ ") and re.search(r"-std=c\+\+\d+", line), line
    argv = line.replace("$T", os.path.dirname(torch.__file__)).replace("load_package.cpp", str(src)).split()
    subprocess.run([*argv[:-1], str(tmp_path / "load_package")], check=True, capture_output=True, timeout=600)
    model = _block()
    with pt2.cache_dir(tmp_path / "inductor"):
        pt2.aoti_package(model, pt2e.example_input(SIZE), tmp_path / "model.pt2")
    out = subprocess.run(
        [str(tmp_path / "load_package"), str(tmp_path / "model.pt2"), str(SIZE)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    with torch.no_grad():
        expected = int(model.eval()(torch.zeros(1, 3, SIZE, SIZE)).argmax(1))
    assert out.stdout.strip().endswith(f"argmax {expected}"), out.stdout


@pytest.mark.slow
def test_pt2e_workflow_end_to_end(tmp_path):
    """ptq_pt2e (with fp32_layers), qat_pt2e, mixed_pt2e, pytorch-compile and pytorch-aoti rows on the real Snakefile; program.pt2 bytes repeat."""
    import hashlib

    import pandas as pd

    from tests.conftest import REPO, snakemake

    snakemake(tmp_path, "--cores", "2", config=REPO / "tests" / "pt2e_config.yaml", timeout=3600)
    df = pd.read_csv(tmp_path / "results/report/summary.csv")
    rows = {(r.variant, r.runtime): r for r in df.itertuples()}
    for key in [
        ("pt2e", "pytorch"),
        ("pt2e-mixed", "pytorch"),
        ("qat-pt2e", "pytorch"),
        ("mixed-pt2e", "pytorch"),
        ("fused", "pytorch-compile"),
    ]:
        assert key in rows, key
    for v in ("pt2e", "pt2e-mixed", "qat-pt2e", "mixed-pt2e", "fused"):
        assert (v, "pytorch-aoti") in rows, v
    assert rows[("pt2e", "pytorch")].quant_api == "pt2e"
    assert rows[("ptq-x86", "pytorch")].quant_api == "torch.ao-fx"
    assert rows[("pt2e", "pytorch")].compiled.startswith("torch.compile")
    assert rows[("fused", "pytorch-compile")].compile_s > 0
    import json

    report = json.loads((tmp_path / "results/resnet18/pt2e/pt2e.json").read_text())
    mixed = json.loads((tmp_path / "results/resnet18/pt2e-mixed/pt2e.json").read_text())
    assert 0 < mixed["qdq_nodes"] < report["qdq_nodes"]
    assert len(report["untied_module_calls"]) == 8
    searched = json.loads((tmp_path / "results/resnet18/mixed-pt2e/pt2e.json").read_text())
    assert [r["layer"] for r in searched["sensitivity"]] == ["conv1"] + [f"layer{i}.{j}" for i in (1, 2, 3, 4) for j in (0, 1)] + ["fc"]
    assert searched["mixed"]["budget_met"] == (searched["mixed"]["val_top1_drop"] <= 0.01) and searched["qdq_nodes"] > 0
    assert rows[("mixed-pt2e", "pytorch")].quant_api == "pt2e"

    def digest(p):
        return hashlib.sha256((tmp_path / "results/resnet18/pt2e" / p).read_bytes()).hexdigest()

    before = {p: digest(p) for p in ("model.pt", "program.pt2")}
    snakemake(
        tmp_path, "--cores", "2", "--forcerun", "ptq_pt2e", "--until", "ptq_pt2e", config=REPO / "tests" / "pt2e_config.yaml", timeout=3600
    )
    assert {p: digest(p) for p in before} == before


@pytest.mark.slow  # inductor compiles C++: 10-100 s
def test_torch_compile_parity(tmp_path):
    _tiny_compiled_parity(tmp_path)


def test_pt2_rows_for_listed_variants_only(tmp_path):
    """deploy.pytorch.compile/aoti as variant lists plan exactly those rows; a name without such a row is one line."""
    from tests.conftest import snakemake, write_config

    cfg = write_config(
        tmp_path / "pt2.yaml",
        sep="/",
        **{
            "deploy/pytorch": {"compile": ["prune-ch50"], "aoti": ["fused", "pt2e"]},
            "variants/pt2e": {"from": "fp32", "technique": "ptq_pt2e"},
        },
    )
    plan = snakemake(tmp_path / "run", "-n", "--cores", "1", config=cfg).stdout
    assert plan.count("rule evaluate_compile:") == 1 and "results/resnet18/prune-ch50/pytorch-compile/metrics.json" in plan
    assert plan.count("rule package_aoti:") == 2
    assert (
        "output: results/resnet18/fused/pytorch-aoti/model.pt2" in plan and "output: results/resnet18/pt2e/pytorch-aoti/model.pt2" in plan
    )
    bad = write_config(tmp_path / "bad.yaml", sep="/", **{"deploy/pytorch": {"compile": ["ptq-x86"], "aoti": False}})
    proc = snakemake(tmp_path / "run", "-n", "--cores", "1", config=bad, check=False)
    assert proc.returncode != 0
    assert (
        "deploy.pytorch.compile names 'ptq-x86', which is not one of the deployed variants (deploy.variants); "
        "fix: use true, false or some of: fused, prune-ch50" in proc.stdout + proc.stderr
    )
    # nothing deployed: the fix says what to add, not "some of: (none)"
    none = write_config(tmp_path / "none.yaml", sep="/", **{"deploy/variants": [], "deploy/pytorch": {"compile": ["fused"], "aoti": False}})
    proc = snakemake(tmp_path / "run", "-n", "--cores", "1", config=none, check=False)
    assert "fix: add 'fused' to deploy.variants first, or set compile: false" in proc.stdout + proc.stderr


def test_aoti_packages_with_grad_off_so_inductor_freezes(tmp_path, monkeypatch):
    """Inductor freezes (prepacked weights, INT8 kernels for PT2E Q/DQ) only with grad off: a package built
    with grad on ran ResNet18 PT2E INT8 at 17 ms instead of 3 ms. The packager must see grad off."""
    import torch._inductor

    from compressflow.runtimes import compile as pt2

    seen = []

    def fake_package(ep, package_path):
        seen.append((torch.is_grad_enabled(), pt2.FREEZING))
        Path(package_path).write_bytes(b"pt2")

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", fake_package)
    assert torch.is_grad_enabled()
    pt2.aoti_package(_block(), pt2e.example_input(SIZE), tmp_path / "model.pt2")
    assert seen == [(False, True)] and (tmp_path / "model.pt2").read_bytes() == b"pt2" and torch.is_grad_enabled()
