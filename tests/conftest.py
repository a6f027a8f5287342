import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from compressflow.steps.export_onnx import export_onnx as export_onnx_step

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


@pytest.fixture(autouse=True)
def _one_thread():
    """One thread, and no global torch state leaking from one test into the next."""
    torch.set_num_threads(1)
    deterministic = torch.are_deterministic_algorithms_enabled()
    engine = torch.backends.quantized.engine
    yield
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.quantized.engine = engine


def snakemake_cmd(workdir, *args, config=None, repo=REPO):
    """The command line that runs the real Snakefile in ``workdir`` (config defaults to tests/tiny_config.yaml)."""
    cmd = [*SNAKEMAKE, "-s", str(repo / "Snakefile"), "--directory", str(workdir), "--profile", str(repo / "profiles" / "default")]
    return cmd + ["--configfile", str(config or repo / "tests" / "tiny_config.yaml"), *args]


SNAKEMAKE_ENV = dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning")


def snakemake(workdir, *args, config=None, check=True, timeout=1200, repo=REPO):
    """Run the real Snakefile in ``workdir`` (config defaults to tests/tiny_config.yaml)."""
    cmd = snakemake_cmd(workdir, *args, config=config, repo=repo)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=SNAKEMAKE_ENV)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


class Background:
    """A whole tiny-config run started as the session begins, so that it overlaps the tests that need no run.

    On 2 cores a lone pytest process leaves one core idle through its ~200 in-process tests (one torch thread
    each), while the tiny run and the reproducibility test's clean run wait for nothing but the CPU. Started
    at collection (:func:`pytest_collection_modifyitems`) and awaited by the fixture that needs the run.
    """

    RUNS: dict = {}  # fixture name -> Background

    def __init__(self, workdir, *args, nice=0):
        self.workdir = Path(workdir)
        self.log = self.workdir.parent / f"{self.workdir.name}.snakemake.out"
        with open(self.log, "w") as out:
            cmd = snakemake_cmd(self.workdir, *args)
            self.proc = subprocess.Popen(["nice", "-n", str(nice), *cmd], stdout=out, stderr=subprocess.STDOUT, env=SNAKEMAKE_ENV)

    def wait(self, timeout=1800):
        """The finished run's directory; a failed run fails every test that needs it, with its log's tail."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        if self.proc.returncode != 0:
            raise AssertionError(f"the background run in {self.workdir} failed ({self.proc.returncode}):\n{self.log.read_text()[-6000:]}")
        return self.workdir


def _start_tiny_run(workdir):
    reuse = os.environ.get("COMPRESSFLOW_REUSE_TINY_RUN")  # for developers iterating on tests: a finished tiny run
    if reuse:
        shutil.copytree(reuse, workdir, symlinks=True, dirs_exist_ok=True)
    return Background(workdir, "--cores", "2")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One real run of the tiny config, shared by the integration tests (read-only for them)."""
    run = Background.RUNS.get("tiny_run") or _start_tiny_run(tmp_path_factory.mktemp("tiny"))
    return run.wait()


@pytest.fixture(scope="session")
def clean_run(tmp_path_factory):
    """A second clean run of the tiny config up to its timing jobs, for tests/test_reproducibility.py."""
    run = Background.RUNS.get("clean_run") or Background(tmp_path_factory.mktemp("clean"), *CLEAN_RUN_ARGS)
    return run.wait()


# The timing jobs' files hold timings, which no two runs share (and so does the report built from them).
CLEAN_RUN_ARGS = ("--cores", "2", "--omit-from", "benchmark_artifact")


@pytest.fixture
def tiny_copy(tiny_run, tmp_path):
    """A private copy of the finished tiny run, for tests that change or break things."""
    dst = tmp_path / "run"
    shutil.copytree(tiny_run, dst, symlinks=True)
    # copytree keeps mtimes (copy2), so Snakemake sees the same up-to-date state.
    return dst


def tiny_model(num_classes=3):
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, num_classes),
    )


SPLIT_FRACTIONS = {"train": 0.6, "calib": 0.1, "val": 0.1, "test": 0.2}
PARITY = {"max_abs_diff": 1e-3, "min_top1_agreement": 0.99}


def digits_splits(size=16):
    """The embedded digits at ``size`` px, split as the tiny config does (seed 0)."""
    from compressflow import data

    return data.prepare("digits", size, SPLIT_FRACTIONS, 0)


def save_untrained_resnet18(d):
    """A seeded, untrained ResNet18 (10 classes) saved as ``d/model.pt``: parity checks need no accuracy."""
    from compressflow import artifacts, models, recipes

    torch.manual_seed(0)
    model = models.build("resnet18", 10).eval()
    artifacts.save_model(model, recipes.base_recipe("resnet18", 10), d / "model.pt")
    return model


def export_onnx(d, out=None, **params):
    """The export_onnx step on ``d/model.pt`` and ``d/val.pt``, writing ``out/model.onnx`` and ``out/export.json``."""

    out = out or d
    outputs = {"onnx": out / "model.onnx", "report": out / "export.json"}
    p = {"opset": 18, "dynamic_batch": True, "simplify": True, "parity": PARITY, **params}
    export_onnx_step({"model": d / "model.pt", "val": d / "val.pt"}, outputs, p, 1)
    return outputs


def git(*args):
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True).stdout


def assert_picture(path, min_px=(300, 200), min_colours=8):
    """``path`` decodes as a PNG of at least ``min_px`` with more than a few colours: a drawn figure, not an empty canvas."""
    from PIL import Image

    with Image.open(path) as im:
        assert im.format == "PNG", f"{path} is {im.format}, not PNG"
        assert im.width >= min_px[0] and im.height >= min_px[1], f"{path} is only {im.size}"
        colours = im.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colours is None or len(colours) >= min_colours, f"{path} has {len(colours)} colours: nothing drawn"


def write_config(path, sep=".", **changes):
    """tests/tiny_config.yaml with ``changes`` applied (keys are paths joined by ``sep``), written to ``path``."""
    import yaml

    cfg = yaml.safe_load((REPO / "tests" / "tiny_config.yaml").read_text())
    for dotted, value in changes.items():
        node = cfg
        *parents, leaf = dotted.split(sep)
        for p in parents:
            node = node[p]
        node[leaf] = value
    Path(path).write_text(yaml.safe_dump(cfg))
    return Path(path)


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected what will not run
def pytest_collection_modifyitems(session, config, items):
    """Start the runs the selected tests need in the background now, and order the tests so that those needing
    no run go first (overlapping the runs) and those needing one follow.

    tests/test_slurm.py's SLURM run spends ~100 s waiting on sbatch polls: it starts now too, and its tests run
    last. The reproducibility test's clean run starts niced, behind the tiny run the most tests wait for.
    """
    factory = config._tmp_path_factory

    def needs(item, name):
        return name in getattr(item, "fixturenames", ())

    slurm = [it for it in items if it.nodeid.startswith("tests/test_slurm.py") and needs(it, "slurm_run")]
    runs = [it for it in items if it not in slurm and (needs(it, "tiny_run") or needs(it, "clean_run"))]
    free = [it for it in items if it not in slurm and it not in runs]
    runs.sort(key=lambda it: needs(it, "clean_run"))  # the clean run finishes last: its test goes last
    items[:] = free + runs + slurm
    if config.option.collectonly:
        return
    if any(needs(it, "tiny_run") for it in runs) and "tiny_run" not in Background.RUNS:
        Background.RUNS["tiny_run"] = _start_tiny_run(Path(factory.mktemp("tiny")))
    if any(needs(it, "clean_run") for it in runs) and "clean_run" not in Background.RUNS:
        Background.RUNS["clean_run"] = Background(Path(factory.mktemp("clean")), *CLEAN_RUN_ARGS, nice=10)
    if not slurm:
        return
    from tests import test_slurm

    if test_slurm._slurm_down_reason() is None and not test_slurm.BACKGROUND:
        workdir = Path(factory.mktemp("slurm"))
        proc, prefix = test_slurm.start(workdir)
        watcher = threading.Thread(target=test_slurm.watch, args=(proc, test_slurm.BACKGROUND), daemon=True)
        test_slurm.BACKGROUND.update(workdir=workdir, proc=proc, prefix=prefix, watcher=watcher)
        watcher.start()


def pytest_sessionfinish(session, exitstatus):
    """Background runs still going (the session stopped early) are stopped, the SLURM one with its jobs."""
    from tests import test_slurm

    for run in Background.RUNS.values():
        if run.proc.poll() is None:
            run.proc.kill()
    proc = test_slurm.BACKGROUND.get("proc")
    if proc is not None and proc.poll() is None:
        proc.kill()
        jobs = subprocess.run(["squeue", "-h", "-o", "%i %j"], capture_output=True, text=True).stdout.splitlines()
        ids = [line.split()[0] for line in jobs if test_slurm.BACKGROUND["prefix"] in line]
        if ids:
            subprocess.run(["scancel", *ids])
