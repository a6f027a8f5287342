"""Bad input through the real workflow: non-zero exit, one clear line, nothing built is touched."""

import contextlib
import pickle
import shutil
import subprocess

import pytest
import torch
import yaml

from compressflow import models, provenance
from tests.conftest import REPO, snakemake, write_config


@pytest.fixture(scope="module")
def built(tiny_run, tmp_path_factory):
    """One copy of the finished tiny run that every bad input is thrown at."""
    dst = tmp_path_factory.mktemp("bad") / "run"
    shutil.copytree(tiny_run, dst, symlinks=True)
    return dst


def _state(workdir, report=True):
    """sha256 of every file under results/ (without results/report/, rewritten from what was built when a job fails)."""
    skip = workdir / "results" / "report"
    return {
        str(p): provenance.sha256(p) for p in sorted((workdir / "results").rglob("*")) if p.is_file() and (report or skip not in p.parents)
    }


def _config(tmp_path, mutate):
    cfg = yaml.safe_load((REPO / "tests" / "tiny_config.yaml").read_text())
    mutate(cfg, tmp_path)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _expect_one_line(workdir, config, *needles, marker="compressflow config error"):
    job = marker != "compressflow config error"  # a job failed: the report is rewritten with its row marked
    before = _state(workdir, report=not job)
    out = snakemake(workdir, "--cores", "1", config=config, check=False)
    text = out.stdout + out.stderr
    assert out.returncode != 0, text[-2000:]
    lines = [line for line in text.splitlines() if marker in line]
    assert len(lines) >= 1, text[-3000:]
    assert all(n in lines[0] for n in needles), lines[0]
    assert "fix:" in lines[0] and "\x1b" not in lines[0]
    assert _state(workdir, report=not job) == before
    if job:
        assert "WARNING: a partial report" in (workdir / "results" / "report" / "summary.md").read_text()
        assert [line for line in text.splitlines() if line.startswith("  FAILED rule")], text[-2000:]
    return lines[0]


def _ckpt(path, state):
    torch.save(state, path)
    return str(path)


def _imagefolder(root, layout):
    """layout: {class: [(filename, kind)]} where kind is png|L|float|text|corrupt."""
    from PIL import Image

    for cls, files in layout.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for name, kind in files:
            p = root / cls / name
            if kind in ("png", "L", "float"):
                Image.new({"png": "RGB", "L": "L", "float": "F"}[kind], (10, 10), 100).save(p)
            elif kind == "text":
                p.write_text("not an image")
            elif kind == "corrupt":
                p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    return str(root)


def _set(dotted, value):
    def mutate(cfg, tmp_path):
        node = cfg
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value(tmp_path) if callable(value) else value

    return mutate


def _user_module(forward_out: str):
    """A user package whose model's forward returns ``forward_out`` (a Python expression of x)."""

    def make(t):
        pkg = t / "code" / "badnets"
        pkg.mkdir(parents=True, exist_ok=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "net.py").write_text(
            "import torch\nclass Net(torch.nn.Module):\n    def __init__(self, num_classes):\n        super().__init__()\n"
            "        self.fc = torch.nn.Linear(3, 1000)\n    def forward(self, x):\n"
            f"        return {forward_out}\ndef build(num_classes):\n    return Net(num_classes)\n"
        )
        return {"module": "badnets.net:build", "code_path": str(t / "code"), "train": {"epochs": 1, "lr": 0.1, "batch_size": 64}}

    return make


CASES = {
    "unknown key": (_set("colour", "blue"), ["unknown key(s) ['colour']", "allowed keys"]),
    # issue 30: each was accepted, then a job failed, or numbers came out silently wrong
    "crop larger than the resize": (
        _set("dataset.preprocess", {"preset": "imagenet", "resize": 16, "crop": 32}),
        ["dataset.preprocess.crop 32 is larger than the resized image", "use a crop of at most 16"],
    ),
    "empty models list drops a variant": (_set("variants.fused.models", []), ["variants.fused.models is an empty list"]),
    "student_from its own variant": (
        _set("variants.kd-pruned.student_from", "kd-pruned"),
        ["variants.kd-pruned depends on itself (variants.kd-pruned.student_from -> 'kd-pruned')"],
    ),
    "dynamic built from an INT8 variant": (
        _set("variants.dyn-int8/dyn", {"from": "dyn-int8", "technique": "dynamic"}),
        ["variants.dyn-int8/dyn (dynamic) is built from 'dyn-int8', which is already INT8 (dynamic)"],
    ),
    "user factory with 1000 logits for 10 classes": (
        _set("models.resnet18", _user_module("self.fc(x.mean((2, 3)))")),
        ["badnets.net:build': forward of 2 images gives shape [2, 1000], not [2, 10]", "num_classes=10"],
    ),
    "user factory whose forward returns a tuple": (
        _set("models.resnet18", _user_module("self.fc(x.mean((2, 3))), x")),
        ["forward returns tuple, not a logits tensor"],
    ),
    "unknown nested key": (_set("dataset.size", 3), ["dataset", "unknown key(s) ['size']"]),
    "wrong type": (_set("seed", "zero"), ["'seed'", "wrong type"]),
    "input size too small": (_set("dataset.input_size", 4), ["dataset.input_size", "minimum 8"]),
    "negative epochs": (_set("models.resnet18.train.epochs", -2), ["models.resnet18.train.epochs", "minimum 0"]),
    "zero learning rate": (_set("models.resnet18.train.lr", 0), ["models.resnet18.train.lr", "exclusiveMinimum 0"]),
    "splits do not sum to one": (_set("dataset.splits", {"train": 0.5, "calib": 0.1, "val": 0.1, "test": 0.1}), ["sum to 0.8"]),
    "unknown model": (
        _set("models.resnet18.arch", "resnet19"),
        ["models.resnet18.arch", "unknown architecture 'resnet19'", "did you mean"],
    ),
    "user module that does not import": (
        _set("models.resnet18", {"module": "nosuch.nets:build", "code_path": ".", "train": {"epochs": 1, "lr": 0.1, "batch_size": 8}}),
        ["models.resnet18.module 'nosuch.nets:build': cannot import", "set code_path"],
    ),
    "checkpoint without the named checkpoint_key": (
        lambda cfg, t: cfg["models"]["resnet18"].update(
            checkpoint=_ckpt(t / "k.pt", {"model": models.build("resnet18", 10).state_dict()}), checkpoint_key="ema"
        ),
        ["has no entry 'ema'", "checkpoint_key"],
    ),
    "checkpoint trained for another class count in a training dict": (
        _set("models.resnet18.checkpoint", lambda t: _ckpt(t / "c7.pt", {"model": models.build("resnet18", 7).state_dict(), "epoch": 3})),
        ["was trained for 7 classes", "the dataset has 10"],
    ),
    "unknown dataset kind": (_set("dataset.kind", "cifar"), ["dataset.kind", "allowed values: digits, imagefolder"]),
    "unknown technique": (_set("variants.x", {"from": "fp32", "technique": "magic"}), ["variants.x.technique", "allowed values"]),
    "unknown parent": (_set("variants.x", {"from": "ghost", "technique": "fuse"}), ["variants.x.from names 'ghost'"]),
    "missing checkpoint": (_set("models.resnet18.checkpoint", "no/such.pt"), ["'no/such.pt' does not exist"]),
    "truncated checkpoint": (
        _set("models.resnet18.checkpoint", lambda t: (t / "cut.pt").write_bytes(b"PK\x03\x04broken") and str(t / "cut.pt")),
        ["truncated or corrupt"],
    ),
    "checkpoint of another architecture": (
        _set("models.resnet18.checkpoint", lambda t: _ckpt(t / "mb.pt", models.build("mobilenet_v2", 10).state_dict())),
        ["do not fit the architecture", "missing"],
    ),
    "checkpoint with another class count": (
        _set("models.resnet18.checkpoint", lambda t: _ckpt(t / "c5.pt", models.build("resnet18", 5).state_dict())),
        ["fc.weight", "(5, 512)"],
    ),
    "checkpoint with NaN weights": (
        _set(
            "models.resnet18.checkpoint",
            lambda t: _ckpt(
                t / "nan.pt",
                {k: v.fill_(float("nan")) if k == "fc.bias" else v for k, v in models.build("resnet18", 10).state_dict().items()},
            ),
        ),
        ["NaN or Inf", "fc.bias"],
    ),
    "checkpoint that is not a state dict": (
        _set("models.resnet18.checkpoint", lambda t: _ckpt(t / "list.pt", [torch.ones(2)])),
        ["not a state dict of tensors"],
    ),
    "imagefolder without root": (_set("dataset.kind", "imagefolder"), ["dataset.root is not set"]),
    "empty image folder": (
        _set("dataset", lambda t: {"kind": "imagefolder", "root": str((t / "empty").mkdir() or t / "empty"), "input_size": 16}),
        ["has 0 class folders"],
    ),
    "class folder with no images": (
        _set(
            "dataset",
            lambda t: {"kind": "imagefolder", "root": _imagefolder(t / "im", {"a": [("1.png", "png")], "b": []}), "input_size": 16},
        ),
        ["has no images"],
    ),
    "non-image file": (
        _set(
            "dataset",
            lambda t: {
                "kind": "imagefolder",
                "root": _imagefolder(t / "im", {"a": [("1.png", "png")], "b": [("x.csv", "text")]}),
                "input_size": 16,
            },
        ),
        ["is not an image file", "x.csv"],
    ),
    "corrupt image": (
        _set(
            "dataset",
            lambda t: {
                "kind": "imagefolder",
                "root": _imagefolder(t / "im", {"a": [("1.png", "png")], "b": [("2.png", "corrupt")]}),
                "input_size": 16,
            },
        ),
        ["cannot be read", "2.png"],
    ),
    "prune ratio of 1": (
        _set("variants.p", {"from": "fp32", "technique": "prune_channels", "ratio": 1.0}),
        ["variants.p.ratio", "exclusiveMaximum 1"],
    ),
    "temperature of 0": (
        _set(
            "variants.kd",
            {"from": "fp32", "technique": "distill", "student": {"arch": "mobilenet_v2"}, "temperature": 0, "epochs": 1, "lr": 0.1},
        ),
        ["variants.kd.temperature", "exclusiveMinimum 0"],
    ),
    "student equal to teacher": (
        _set("variants.kd", {"from": "fp32", "technique": "distill", "student": {"arch": "resnet18"}, "epochs": 1, "lr": 0.1}),
        ["same network as the teacher"],
    ),
    "unknown backend": (
        _set("variants.q", {"from": "fp32", "technique": "ptq", "backend": "arm"}),
        ["variants.q.backend", "x86, fbgemm, qnnpack"],
    ),
    "unknown observer": (_set("variants.q", {"from": "fp32", "technique": "ptq", "observer": "mse"}), ["variants.q.observer", "minmax"]),
    "onnx opset out of range": (_set("deploy.opset", 17), ["deploy.opset", "minimum 18"]),
    "deploying an unknown variant": (_set("deploy.variants", ["ghost"]), ["deploy.variants names 'ghost'"]),
    "fractional epochs": (_set("models.resnet18.train.epochs", 1.5), ["models.resnet18.train.epochs", "wrong type; expected integer"]),
    "fractional input size": (_set("dataset.input_size", 16.5), ["dataset.input_size", "wrong type; expected integer"]),
    "variant named like a reserved folder": (
        _set("variants.sensitivity", {"from": "fp32", "technique": "fuse"}),
        ["variants.sensitivity", "reserved names:", "onnx", "provenance"],
    ),
    "chained variant through a runtime folder": (
        _set("variants.fused/openvino", {"from": "fused", "technique": "dynamic"}),
        ["variants.fused/openvino", "'openvino' is a folder name the workflow reserves"],
    ),
    "checkpoint that is a directory": (
        _set("models.resnet18.checkpoint", lambda t: (t / "ckpt").mkdir() or str(t / "ckpt")),
        ["'", "ckpt' is a directory, not a file"],
    ),
    "whole pickled model as checkpoint": (
        _set("models.resnet18.checkpoint", lambda t: _ckpt(t / "whole.pt", models.build("resnet18", 10))),
        ["refused to load", "whole.pt", "weights_only"],
    ),
    "image over the pixel limit": (
        _set(
            "dataset",
            lambda t: {
                "kind": "imagefolder",
                "root": _imagefolder(t / "im", {"a": [("1.png", "png")], "b": [("2.png", "png")]}),
                "input_size": 16,
                "max_image_pixels": 50,
            },
        ),
        ["1.png' has 10x10 = 100 pixels", "dataset.max_image_pixels (50)"],
    ),
    "image mode with no faithful 8-bit RGB": (
        _set(
            "dataset",
            lambda t: {
                "kind": "imagefolder",
                "root": _imagefolder(t / "im", {"a": [("1.png", "png")], "b": [("2.tif", "float")]}),
                "input_size": 16,
            },
        ),
        ["2.tif' has mode 'F'"],
    ),
}

# Errors only a job can see: the job fails with one line, and no earlier artifact changes.
JOB_CASES = {
    "calibration set larger than the split": (
        _set("variants.ptq-big", {"from": "fp32", "technique": "ptq", "calib_size": 100000}),
        ["rule ptq_calibrate", "calib_size=100000", "calib split has"],
    ),
    "ignored layer that does not exist": (
        _set("variants.pr", {"from": "fp32", "technique": "prune_channels", "ratio": 0.5, "ignored_layers": ["layer9.conv1"]}),
        ["rule prune_channels", "layer9.conv1"],
    ),
}


@pytest.mark.parametrize("case", list(JOB_CASES))
def test_bad_input_seen_by_a_job_is_one_line(built, tmp_path, case):
    mutate, needles = JOB_CASES[case]
    _expect_one_line(built, _config(tmp_path, mutate), *needles, marker="compressflow error in rule")


def test_tensorrt_forced_on_without_gpu_fails_fast(built, tmp_path):
    """mode: on is checked in the job (under SLURM the parsing host has no GPU); only TensorRT outputs may go."""
    pytest.importorskip("torch")
    import torch as _torch

    if _torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    before = {k: v for k, v in _state(built, report=False).items() if "/tensorrt-" not in k}
    out = snakemake(built, "--cores", "1", config=_config(tmp_path, _set("deploy.tensorrt", {"mode": "on"})), check=False)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    lines = [line for line in text.splitlines() if "compressflow error in rule build_trt" in line]
    assert lines and "deploy.tensorrt.mode is 'on' but" in lines[0] and "fix:" in lines[0], text[-2000:]
    assert before == {k: v for k, v in _state(built, report=False).items() if "/tensorrt-" not in k}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_touches_nothing(built, tmp_path, case):
    mutate, needles = CASES[case]
    _expect_one_line(built, _config(tmp_path, mutate), *needles)


def test_malicious_checkpoint_is_refused_and_never_runs(built, tmp_path):
    marker = tmp_path / "owned"

    class Payload:
        def __reduce__(self):
            return (subprocess.call, (["touch", str(marker)],))

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"fc.weight": Payload()}))
    line = _expect_one_line(built, _config(tmp_path, _set("models.resnet18.checkpoint", str(evil))), "refused to load", "weights_only")
    assert "evil.pt" in line
    assert not marker.exists()


def _can_mount():
    probe = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", "/mnt"], capture_output=True)
    if probe.returncode == 0:
        subprocess.run(["umount", "/mnt"])
    return probe.returncode == 0


needs_mount = pytest.mark.skipif(shutil.which("mount") is None or not _can_mount(), reason="needs root and tmpfs mounts")


@contextlib.contextmanager
def _tmpfs(path, options):
    """A tmpfs mounted at ``path`` (created) for the duration of the block."""
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)])


@needs_mount
def test_read_only_output_location(tmp_path):
    with _tmpfs(tmp_path / "ro", "size=4m,ro") as ro:
        out = snakemake(ro, "--cores", "1", check=False)
        text = out.stdout + out.stderr
        assert out.returncode != 0
        assert any("compressflow config error" in line and "is not writable" in line for line in text.splitlines()), text[-2000:]


@needs_mount
def test_disk_full_is_one_line_and_keeps_finished_outputs(tmp_path):
    # The splits (~6 MB) fit in 12 MB and the trained model (~43 MB) does not: one epoch is enough to get there.
    config = write_config(tmp_path / "one_epoch.yaml", **{"models.resnet18.train.epochs": 1})
    with _tmpfs(tmp_path / "small", "size=12m") as small:
        out = snakemake(small, "--cores", "1", config=config, check=False)
        text = out.stdout + out.stderr
        assert out.returncode != 0
        lines = [line for line in text.splitlines() if "compressflow error in rule" in line and "No space left" in line]
        assert lines and "free disk space" in lines[0], text[-3000:]
        assert (small / "results/data/test.pt").is_file()  # finished before the disk filled
        assert not list(small.rglob(".*.tmp"))  # no half-written temporary left behind
        assert not (small / "results/resnet18/fp32/model.pt").exists()
