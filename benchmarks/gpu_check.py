"""Every GPU check of config ``device`` in one run, for a machine with an NVIDIA GPU (docs/gpu.md).

    python benchmarks/gpu_check.py [--out gpu_check.csv] [--e2e] [--pytest]

Needs only this repository and a CUDA build of torch with torchvision (numpy comes with torchvision);
tqdm is stubbed and the digits data replaced by a seeded synthetic set when they are missing. Each check
trains or evaluates a small ResNet18 on CUDA and on the CPU and compares accuracy within a tolerance;
``--e2e`` also runs the tiny workflow with ``device: cuda`` and ``--pytest`` runs ``pytest -m gpu``, when
requirements.txt is installed (each is a ``skip`` row otherwise). Writes one CSV
row per check (check, status ok/FAIL/skip, detail) and exits non-zero if any check failed.
``tests/test_gpu.py`` runs the same checks under ``pytest -m gpu``.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
import traceback
import types
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

if importlib.util.find_spec("tqdm") is None:  # a lent GPU machine may have torch only
    _stub = types.ModuleType("tqdm")
    _stub.tqdm = lambda it, **_: it
    sys.modules["tqdm"] = _stub

import torch  # noqa: E402

from compressflow import artifacts, device, files, recipes  # noqa: E402

SIZE = 16
ACC_TOL = 0.05  # top-1 CPU vs CUDA (and AMP vs fp32): 18 of 360 test images
EPOCHS = 5


def splits(size: int = SIZE) -> dict:
    """The digits splits of the tiny config; a seeded synthetic 10-class set without scikit-learn."""
    if importlib.util.find_spec("sklearn") is not None:
        from compressflow import data

        return data.prepare("digits", size, {"train": 0.6, "calib": 0.1, "val": 0.1, "test": 0.2}, 0)
    g = torch.Generator().manual_seed(0)
    templates = torch.rand(10, 3, size, size, generator=g)
    out = {}
    for name, n in {"train": 1000, "calib": 180, "val": 180, "test": 360}.items():
        y = torch.arange(n) % 10
        x = 0.6 * templates[y] + 0.4 * torch.rand(n, 3, size, size, generator=g)
        out[name] = {"x": (x * 255).round().to(torch.uint8), "y": y, "classes": [str(i) for i in range(10)]}
    return out


_TRAINED = {}


def _train(split: dict, dev, *, amp=False, seed: int = 0, epochs: int = EPOCHS, cache: bool = True):
    """A ResNet18 trained on ``dev``; the same request returns a copy of the first result (checks share them)."""
    import copy

    from compressflow import models, train

    key = (id(split), str(dev), amp, seed, epochs)
    if cache and key in _TRAINED:
        model, history = _TRAINED[key]
        return copy.deepcopy(model), history
    train.seed_everything(seed, None)
    dev = device.use(str(dev).split(":")[0])
    model = models.build("resnet18", 10).to(dev)
    history = train.fit(model, split, epochs=epochs, lr=0.05, batch_size=64, seed=seed, amp=amp, desc=f"gpu_check {dev}")
    _TRAINED[key] = (copy.deepcopy(model), history)
    return model, history


def _top1(model, split) -> float:
    from compressflow import evaluate as ev

    return ev.topk(ev.predict(model, split), split["y"], 1)


def check_selection(s=None) -> str:
    assert torch.cuda.is_available(), "torch sees no CUDA device"
    assert device.resolve("auto").type == "cuda" and device.resolve("cuda").type == "cuda"
    assert device.resolve("cpu").type == "cpu"
    name = device.describe(device.resolve("cuda"))
    assert name.startswith("cuda:") and len(name) > len("cuda:0 "), name
    return name


def check_train_cuda_matches_cpu(s) -> str:
    cpu_model, _ = _train(s["train"], "cpu")
    gpu_model, hist = _train(s["train"], "cuda")
    assert device.of(gpu_model).type == "cuda", "the model did not train on CUDA"
    top_cpu, top_gpu = _top1(cpu_model, s["test"]), _top1(gpu_model, s["test"])
    assert top_cpu > 0.5, f"CPU top-1 {top_cpu:.3f}: the check's model did not learn"
    assert abs(top_cpu - top_gpu) <= ACC_TOL, f"top-1 CPU {top_cpu:.4f} vs CUDA {top_gpu:.4f}"
    with tempfile.TemporaryDirectory() as d:  # saved from CUDA, loads on the CPU with the same outputs
        path = Path(d) / "model.pt"
        expected = _top1(gpu_model, s["test"])
        artifacts.save_model(gpu_model, recipes.base_recipe("resnet18", 10), path)
        assert device.of(gpu_model).type == "cpu", "save_model must leave the model on the CPU"
        loaded, _ = artifacts.load_model(path)
        assert abs(_top1(loaded, s["test"]) - expected) <= 2 / len(s["test"]["y"])
    return f"top-1 CPU {top_cpu:.4f}, CUDA {top_gpu:.4f}; final loss CUDA {hist[-1]['loss']:.4f}"


def check_amp(s) -> str:
    ref, _ = _train(s["train"], "cuda")
    base = _top1(ref, s["test"])
    out = [f"fp32 {base:.4f}"]
    for amp in ("bf16", "fp16"):
        model, hist = _train(s["train"], "cuda", amp=amp)
        top = _top1(model, s["test"])
        assert all(torch.isfinite(torch.tensor(h["loss"])) for h in hist), f"{amp}: loss not finite"
        assert abs(top - base) <= ACC_TOL, f"{amp} top-1 {top:.4f} vs fp32 {base:.4f}"
        out.append(f"{amp} {top:.4f}")
    return "top-1 " + ", ".join(out)


def check_evaluate(s) -> str:
    from compressflow import evaluate as ev
    from compressflow.quantize.dynamic import quantize_dynamic

    model, _ = _train(s["train"], "cpu", epochs=1)
    lat = {"batch_size": 256, "threads": 2}
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "model.pt"
        artifacts.save_model(model, recipes.base_recipe("resnet18", 10), path)
        row_cpu, logits_cpu = ev.evaluate(model, s["test"], path, **lat)
        row_gpu, logits_gpu = ev.evaluate(model, s["test"], path, device=device.resolve("cuda"), **lat)
        assert row_gpu["accuracy_device"].startswith("cuda:") and row_gpu["latency_device"] == "cpu", row_gpu
        assert row_cpu["accuracy_device"] == "cpu"
        assert device.of(model).type == "cpu", "evaluate left the model on the GPU (latency must be CPU latency)"
        assert logits_gpu.device.type == "cpu"
        diff = (logits_gpu - logits_cpu).abs().max().item()
        assert diff < 1e-2, f"CUDA logits differ from CPU by {diff}"
        assert abs(row_cpu["top1"] - row_gpu["top1"]) <= 2 / len(s["test"]["y"])
        q, _ = quantize_dynamic(model, "qint8")
        row_q, _ = ev.evaluate(q, s["test"], path, device=device.resolve("cuda"), **lat)
        assert row_q["accuracy_device"] == "cpu", "an INT8 model must be evaluated on the CPU"
    return f"max |logit diff| {diff:.2e}; top-1 CPU {row_cpu['top1']:.4f} CUDA {row_gpu['top1']:.4f}"


def _step_files(s, d: Path, model) -> dict:
    for name in ("train", "calib", "val", "test"):
        files.save_tensors(s[name], d / f"{name}.pt")
    artifacts.save_model(model, recipes.base_recipe("resnet18", 10), d / "parent.pt")
    return {name: str(d / f"{name}.pt") for name in ("train", "calib", "val", "test")} | {"model": str(d / "parent.pt")}


def check_ptq_calibrate(s) -> str:
    from compressflow.steps.ptq import ptq
    from compressflow.steps.ptq_calibrate import ptq_calibrate

    model, _ = _train(s["train"], "cpu")
    tops = {}
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        inp = _step_files(s, d, model)
        for dev in ("cpu", "cuda"):
            out = {"calibrated": d / dev / "calibrated.pt", "calibration": d / dev / "calibration.json"}
            params = {
                "backend": "x86",
                "observer": "histogram",
                "activation": "affine",
                "per_channel": True,
                "calib_size": 128,
                "percentile": 99.99,
                "device": dev,
            }
            ptq_calibrate({"model": inp["model"], "calib": inp["calib"]}, out, params, 2)
            ptq({"calibrated": out["calibrated"], "calib": inp["calib"]}, {"model": d / dev / "model.pt"}, {"bias_correction": False}, 2)
            q, _ = artifacts.load_model(d / dev / "model.pt")
            tops[dev] = _top1(q, s["test"])
    assert abs(tops["cpu"] - tops["cuda"]) <= ACC_TOL, tops
    return f"INT8 top-1, calibrated on CPU {tops['cpu']:.4f}, on CUDA {tops['cuda']:.4f}"


def check_qat(s) -> str:
    from compressflow.steps.qat import qat

    model, _ = _train(s["train"], "cpu")
    fp32 = _top1(model, s["test"])
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        inp = _step_files(s, d, model)
        params = {
            "backend": "x86",
            "per_channel": True,
            "epochs": 1,
            "lr": 0.001,
            "batch_size": 64,
            "freeze_observers_epoch": 0,
            "freeze_bn_epoch": 0,
            "seed": 0,
            "device": "cuda",
        }
        qat({"model": inp["model"], "train": inp["train"]}, {"model": d / "model.pt", "history": d / "history.json"}, params, 2)
        q, _ = artifacts.load_model(d / "model.pt")
        top = _top1(q, s["test"])
    assert abs(top - fp32) <= ACC_TOL, f"QAT on CUDA: INT8 top-1 {top:.4f} vs FP32 {fp32:.4f}"
    return f"QAT (CUDA) INT8 top-1 {top:.4f}, FP32 {fp32:.4f}"


def check_repeatability(s) -> str:
    """Informational: are two identical CUDA trainings byte-identical here (docs/gpu.md says: not guaranteed)?"""
    a, _ = _train(s["train"], "cuda", epochs=1, cache=False)
    b, _ = _train(s["train"], "cuda", epochs=1, cache=False)
    same = all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    return "two CUDA trainings: identical weights" if same else "two CUDA trainings: weights differ (non-deterministic kernels)"


def check_e2e(s=None) -> str:
    """The tiny workflow with device: cuda; every device rule's provenance must name the GPU."""
    missing = [
        m for m in ("snakemake", "yaml", "sklearn", "onnxruntime", "openvino", "torch_pruning") if importlib.util.find_spec(m) is None
    ]
    if missing:
        return f"skip: not installed: {', '.join(missing)} (pip install -r requirements.txt)"
    import json

    import yaml

    cfg = yaml.safe_load((REPO / "tests" / "tiny_config.yaml").read_text())
    cfg["device"] = "cuda"
    cfg["models"]["resnet18"]["train"]["amp"] = "bf16"
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "config.yaml").write_text(yaml.safe_dump(cfg))
        cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", d, "--configfile", f"{d}/config.yaml"]
        cmd += ["--cores", str(min(os.cpu_count() or 2, 16))]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, env=dict(os.environ, PYTHONPATH=str(REPO)))
        assert proc.returncode == 0, proc.stderr[-3000:]
        from compressflow import layout

        provs = [json.loads(p.read_text()) for p in Path(d, "results").rglob("*provenance.json")]
        # evaluate runs INT8 variants on the CPU; every other device rule must have run on the GPU
        bad = [(p["rule"], p.get("device")) for p in provs if p["rule"] in layout.DEVICE_RULES and p["rule"] != "evaluate"]
        bad = [b for b in bad if not str(b[1]).startswith("cuda:")]
        assert not bad, f"device rules not on CUDA: {bad}"
        m = json.loads(Path(d, "results/resnet18/fp32/metrics.json").read_text())
        assert m["accuracy_device"].startswith("cuda:") and m["latency_device"] == "cpu", m
    return f"tiny workflow on CUDA: {len(provs)} provenance records, top-1 fp32 {m['top1']:.4f}"


def check_pytest_gpu(s=None) -> str:
    """``pytest -m gpu`` over the whole suite (this file's checks again, plus TensorRT's), when pytest is installed."""
    if importlib.util.find_spec("pytest") is None:
        return "skip: pytest not installed"
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", str(REPO / "tests")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
    tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-500:]
    assert proc.returncode in (0, 5), proc.stdout[-3000:] + proc.stderr[-2000:]  # 5: nothing collected
    return tail


CHECKS = [check_selection, check_train_cuda_matches_cpu, check_amp, check_evaluate, check_ptq_calibrate, check_qat, check_repeatability]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="gpu_check.csv")
    ap.add_argument("--e2e", action="store_true", help="also run the tiny workflow with device: cuda (needs requirements.txt)")
    ap.add_argument("--pytest", action="store_true", help="also run pytest -m gpu (needs requirements.txt)")
    args = ap.parse_args(argv)
    print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), cuda available: {torch.cuda.is_available()}", flush=True)
    s = splits()
    rows = []
    for check in CHECKS + ([check_e2e] if args.e2e else []) + ([check_pytest_gpu] if args.pytest else []):
        t0 = time.perf_counter()
        try:
            detail = check(s)
            status = "skip" if str(detail).startswith("skip") else "ok"
        except Exception as exc:  # a failed check is a row, the others still run
            status, detail = "FAIL", f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        rows.append({"check": check.__name__, "status": status, "seconds": round(time.perf_counter() - t0, 1), "detail": detail})
        print(f"{status:4} {check.__name__}: {detail}", flush=True)
    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return 1 if any(r["status"] == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
