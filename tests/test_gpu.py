"""Config ``device``: selection, the error without CUDA, provenance, SLURM GPU requests (CPU tests);
training and evaluation on CUDA vs the CPU (``-m gpu``, the checks of benchmarks/gpu_check.py)."""

import importlib.util
import re
import subprocess
import sys

import pytest
import torch
import yaml
from torch import nn

from compressflow import data, device, layout, provenance, smk, train
from compressflow.errors import CompressflowError
from tests.conftest import REPO, snakemake

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def _no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_auto_picks_cuda_only_when_torch_sees_it(monkeypatch):
    _no_cuda(monkeypatch)
    assert device.resolve("auto") == torch.device("cpu")
    assert device.resolve("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert device.resolve("auto") == torch.device("cuda", 0)
    assert device.resolve("cuda") == torch.device("cuda", 0)
    assert device.resolve("cpu") == torch.device("cpu")  # cpu stays cpu on a GPU machine


def test_cuda_without_cuda_is_one_clear_error(monkeypatch):
    _no_cuda(monkeypatch)
    with pytest.raises(CompressflowError) as err:
        device.resolve("cuda")
    line = str(err.value)
    assert "\n" not in line and "device: cuda" in line and "no CUDA device" in line and "fix:" in line
    with pytest.raises(CompressflowError, match="device 'gpu'"):
        device.resolve("gpu")


def test_local_check_looks_for_an_nvidia_gpu(tmp_path):
    with pytest.raises(CompressflowError, match="shows no NVIDIA GPU"):
        device.check_local("cuda", root=str(tmp_path))
    device.check_local("auto", root=str(tmp_path))  # auto and cpu never stop a run
    device.check_local("cpu", root=str(tmp_path))
    (tmp_path / "proc/driver/nvidia/gpus/0000:01:00.0").mkdir(parents=True)
    device.check_local("cuda", root=str(tmp_path))


def test_device_is_in_provenance(monkeypatch):
    _no_cuda(monkeypatch)
    monkeypatch.setattr(device, "_USED", None)
    assert smk._device_used({"seed": 0}) is None  # CPU-only rules carry no device
    assert device.resolve("auto").type == "cpu"
    device.use("auto")
    assert smk._device_used({"device": "auto"}) == "cpu"
    rec = provenance.record("train_baseline", {}, {}, {"device": "auto"}, 0, REPO, device="cuda:0 NVIDIA H200")
    assert rec["device"] == "cuda:0 NVIDIA H200"
    assert "device" not in provenance.record("fuse", {}, {}, {}, 0, REPO)


def test_use_on_cpu_changes_no_determinism_setting(monkeypatch):
    _no_cuda(monkeypatch)
    torch.use_deterministic_algorithms(True)
    device.use("auto")
    assert torch.are_deterministic_algorithms_enabled() and not torch.is_deterministic_algorithms_warn_only_enabled()


def _toy_split(n=64, size=8):
    g = torch.Generator().manual_seed(0)
    return {
        "x": torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8),
        "y": torch.arange(n) % 4,
        "classes": list("abcd"),
    }


def _toy_fit(amp):
    train.seed_everything(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
    hist = train.fit(model, _toy_split(), epochs=2, lr=0.1, batch_size=16, seed=0, amp=amp)
    return model, hist


def test_amp_is_ignored_on_the_cpu_with_a_warning(capsys):
    ref, ref_hist = _toy_fit(False)
    for amp in ("bf16", "fp16"):
        model, hist = _toy_fit(amp)
        assert hist == ref_hist and all(
            torch.equal(a, b) for a, b in zip(model.state_dict().values(), ref.state_dict().values(), strict=True)
        )
        assert "train.amp: " + amp + " ignored" in capsys.readouterr().err
    assert device.amp_note(False, "cpu") is None and device.amp_note("bf16", "cpu")


def test_int8_models_are_recognised():
    from compressflow.quantize.dynamic import quantize_dynamic

    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 4))
    assert not device.is_int8(model)
    assert device.is_int8(quantize_dynamic(model, "qint8")[0])


def test_evaluate_records_accuracy_and_latency_devices(tmp_path):
    from compressflow import artifacts, models, recipes
    from compressflow import evaluate as ev

    torch.manual_seed(0)
    model = models.build("resnet18", 4).eval()
    path = tmp_path / "m.pt"
    artifacts.save_model(model, recipes.base_recipe("resnet18", 4), path)
    row, logits = ev.evaluate(model, _toy_split(16), path, batch_size=8, threads=1)
    assert row["accuracy_device"] == "cpu" and row["latency_device"] == "cpu" and logits.shape == (16, 4)


def test_schema_refuses_an_unknown_device():
    from compressflow import config as cfcheck

    cfg = yaml.safe_load((REPO / "tests" / "tiny_config.yaml").read_text())
    cfg["device"] = "gpu"
    with pytest.raises(CompressflowError, match="device"):
        cfcheck.check_schema(cfg, REPO / "config" / "schema.yaml")
    cfg["device"] = "cuda"
    cfg["models"]["resnet18"]["train"]["amp"] = "fp8"
    with pytest.raises(CompressflowError, match="amp"):
        cfcheck.check_schema(cfg, REPO / "config" / "schema.yaml")


def _slurm_dry_run(tmp_path, dev):
    cfg = yaml.safe_load((REPO / "tests" / "tiny_config.yaml").read_text())
    cfg["device"] = dev
    tmp_path.mkdir()
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path)]
    cmd += ["--workflow-profile", str(REPO / "profiles" / "slurm"), "--configfile", str(tmp_path / "config.yaml"), "-n"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    jobs = re.findall(r"^rule (\w+):\n(?:    .*\n)*?    resources: (.*)$", out.stdout + out.stderr, re.M)
    assert jobs
    return [(rule, dict(kv.split("=", 1) for kv in res.split(", "))) for rule, res in jobs]


def test_slurm_gpu_resources_only_for_device_rules(tmp_path):
    """device: cuda -> --gpus=1 for exactly the device rules' jobs (not INT8 evaluations); device: cpu -> none of them."""
    trt = {"build_trt_fp16", "build_trt_int8", "build_trt_int8_calib", "evaluate_tensorrt"}  # the profile's own GPU rules
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    assert trt == {r for r, res in profile["set-resources"].items() if "gpu" in res}
    jobs = _slurm_dry_run(tmp_path / "cuda", "cuda")
    asked = {rule for rule, res in jobs if res.get("gpu", "0") != "0"} - trt
    assert asked == set(layout.DEVICE_RULES), asked
    evaluate = [res.get("gpu", "0") for rule, res in jobs if rule == "evaluate"]
    assert "0" in evaluate and "1" in evaluate  # INT8 variants are evaluated on the CPU: no GPU for them
    jobs = _slurm_dry_run(tmp_path / "cpu", "cpu")
    assert not {rule for rule, res in jobs if res.get("gpu", "0") != "0"} - trt


def test_device_cuda_without_a_gpu_stops_a_local_run_before_any_job(tmp_path):
    if device.nvidia_driver_present():
        pytest.skip("this machine has an NVIDIA GPU")
    cfg = yaml.safe_load((REPO / "tests" / "tiny_config.yaml").read_text())
    cfg["device"] = "cuda"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    out = snakemake(tmp_path, "--cores", "1", config=tmp_path / "config.yaml", check=False)
    lines = [ln for ln in (out.stdout + out.stderr).splitlines() if "compressflow config error" in ln]
    assert out.returncode != 0 and len(lines) == 1 and "device: cuda" in lines[0] and "fix:" in lines[0], out.stderr[-2000:]
    assert not (tmp_path / "results").exists()


# ---------------------------------------------------------------- on a GPU (pytest -m gpu)


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gpu_splits():
    return _gpu_check().splits()


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize(
    "check", ["check_selection", "check_train_cuda_matches_cpu", "check_amp", "check_evaluate", "check_ptq_calibrate", "check_qat"]
)
def test_gpu(check, gpu_splits):
    print(getattr(_gpu_check(), check)(gpu_splits))


@pytest.mark.gpu
@cuda
def test_gpu_batches_follow_the_model():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4)).cuda()
    hist = train.fit(model, _toy_split(), epochs=1, lr=0.1, batch_size=16, seed=0, amp="bf16")
    assert device.of(model).type == "cuda" and hist
    from compressflow import evaluate as ev

    assert ev.predict(model, _toy_split()).device.type == "cpu"
    assert data.to_input(_toy_split()["x"]).device.type == "cpu"


def test_gpu_check_script_lists_every_check():
    module = _gpu_check()
    names = {c.__name__ for c in module.CHECKS}
    assert {"check_selection", "check_train_cuda_matches_cpu", "check_amp", "check_evaluate", "check_ptq_calibrate", "check_qat"} <= names
