"""Interrupted runs and parallel writes.

A ``kill -9`` of the whole workflow leaves no half-written artifact under its real name, a rerun
finishes byte-identical to an uninterrupted run, and concurrent writers never share a temporary file.
"""

import contextlib
import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from compressflow import files, provenance
from tests.conftest import REPO, SNAKEMAKE, snakemake
from tests.test_reproducibility import TIMING_FILES, _hashes

# Leftovers a SIGKILL may strand (no `finally` runs): files.atomic_path's temporaries, and the
# fixed-name scratch files of export_onnx / quantize_onnxruntime (each job owns its folder).
STRAY = re.compile(r"(/\.[^/]+\.tmp|model\.(raw|sim|pre)\.onnx)$")
POLL_S = 0.05


def _digests(root):
    """sha256 of every file under results/; provenance records without git_commit (the repository's state at run
    time, +dirty while someone edits it, may differ between the fixture's run and this one)."""
    out = {}
    for rel, digest in _hashes(root).items():
        if rel.endswith("provenance.json") and not TIMING_FILES.search(rel):
            record = json.loads((root / rel).read_text())
            record.pop("git_commit", None)
            digest = json.dumps(record, sort_keys=True)
        out[rel] = digest
    return out


def _start(workdir, console):
    """The workflow as conftest.snakemake runs it, in its own process group so one signal reaches every job."""
    cmd = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--profile", str(REPO / "profiles" / "default")]
    cmd += ["--configfile", str(REPO / "tests" / "tiny_config.yaml"), "--cores", "2"]
    env = dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning")
    return subprocess.Popen(cmd, stdout=console, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _live_members(pgid):
    """Processes of group ``pgid`` that are not zombies (pid 1 here may never reap orphans)."""
    alive = []
    for stat in os.listdir("/proc"):
        if not stat.isdigit():
            continue
        try:
            fields = open(f"/proc/{stat}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat))
    return alive


def _kill_when(proc, ready, console, what, timeout=900):
    """Poll ``ready()``; when true, SIGKILL the workflow's whole process group and wait until none of it runs."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"workflow ended (rc {proc.returncode}) before {what}:\n{console.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"no {what} within {timeout} s:\n{console.read_text()[-3000:]}")
        time.sleep(POLL_S)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    deadline = time.monotonic() + 30
    while _live_members(proc.pid):
        assert time.monotonic() < deadline, f"jobs of the killed run still alive: {_live_members(proc.pid)}"
        time.sleep(0.1)


def _check_left_behind(workdir, clean):
    """Every file the killed run left under a final name is complete; returns the stray temporaries."""
    strays = []
    for rel, digest in _digests(workdir).items():
        if STRAY.search(rel):
            strays.append(rel)
            continue
        assert rel in clean, f"{rel}: left by the killed run but never produced by a clean run"
        path = workdir / rel
        if not TIMING_FILES.search(rel):
            assert digest == clean[rel], f"{rel} exists under its final name but differs from the clean run's (half-written)"
        elif path.suffix == ".json":
            json.loads(path.read_text())
    return strays


def _rerun_to_completion(workdir):
    """kill -9 leaves Snakemake's lock behind: the plain rerun must refuse and name --unlock; after it, finish."""
    locked = snakemake(workdir, "--cores", "2", check=False)
    assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr, locked.stderr[-3000:]
    snakemake(workdir, "--unlock", "--cores", "1")
    snakemake(workdir, "--cores", "2")


def _assert_same_as_clean(workdir, tiny_run):
    clean = {k: v for k, v in _digests(tiny_run).items() if not STRAY.search(k)}
    after = {k: v for k, v in _digests(workdir).items() if not STRAY.search(k)}
    assert after.keys() == clean.keys()
    stable = [k for k in clean if not TIMING_FILES.search(k)]
    assert any(k.endswith("qat-x86/model.pt") for k in stable) and any(k.endswith("fp32/model.pt") for k in stable)
    assert [k for k in stable if after[k] != clean[k]] == []
    return sorted(k for k in _hashes(workdir) if STRAY.search(k))


@pytest.mark.slow
def test_kill_during_training_then_rerun_is_identical(tiny_run, tmp_path):
    workdir, console = tmp_path / "run", tmp_path / "console.log"
    log = workdir / "logs" / "resnet18" / "fp32" / "train_baseline.log"
    model = workdir / "results" / "resnet18" / "fp32" / "model.pt"

    def training():
        return log.is_file() and "train resnet18" in log.read_text(errors="replace") and not model.exists()

    with console.open("w") as out:
        _kill_when(_start(workdir, out), training, console, "training progress in train_baseline.log")
    clean = _digests(tiny_run)
    strays = _check_left_behind(workdir, clean)
    assert not model.exists() or provenance.sha256(model) == clean["results/resnet18/fp32/model.pt"]
    # A stale temporary beside the output a rerun must write: it has to be ignored, never renamed into place.
    planted = model.parent / ".model.pt.killed0.tmp"
    planted.write_bytes(b"half a model")
    _rerun_to_completion(workdir)
    left = _assert_same_as_clean(workdir, tiny_run)
    print(f"strays after kill: {strays}; after rerun: {left}")


@pytest.mark.slow
def test_kill_during_quantization_then_rerun_is_identical(tiny_run, tmp_path):
    workdir, console = tmp_path / "run", tmp_path / "console.log"
    logs, results = workdir / "logs" / "resnet18", workdir / "results" / "resnet18"
    ptq = ("ptq-x86", "ptq-x86-bc", "fused/ptq-minmax")
    running = []

    def quantizing():
        qat_log = logs / "qat-x86" / "qat.log"
        if qat_log.is_file() and "qat" in qat_log.read_text(errors="replace") and not (results / "qat-x86" / "model.pt").exists():
            running.append("qat")
        running.extend(
            f"ptq_calibrate {v}" for v in ptq if (logs / v / "ptq_calibrate.log").is_file() and not (results / v / "calibrated.pt").exists()
        )
        return bool(running)

    with console.open("w") as out:
        _kill_when(_start(workdir, out), quantizing, console, "running ptq_calibrate or qat job")
    strays = _check_left_behind(workdir, _digests(tiny_run))
    _rerun_to_completion(workdir)
    left = _assert_same_as_clean(workdir, tiny_run)
    print(f"killed during {running}; strays after kill: {strays}; after rerun: {left}")


def test_finished_run_leaves_no_temporaries(tiny_run):
    assert sorted(str(p.relative_to(tiny_run)) for p in (tiny_run / "results").rglob("*") if STRAY.search(str(p))) == []


def test_kill_mid_write_keeps_the_old_file_and_only_strands_a_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    files.write_json({"run": "old"}, target)
    code = (
        "import sys, time\nfrom compressflow import files\n"
        "with files.atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_text('{\"run\": \"new\", ')\n    print('writing', flush=True)\n    time.sleep(300)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.kill()
    proc.wait(timeout=30)
    assert files.read_json(target) == {"run": "old"}
    strays = sorted(p.name for p in tmp_path.iterdir() if p != target)
    assert len(strays) == 1 and re.fullmatch(r"\.metrics\.json\.\w+\.tmp", strays[0]), strays
    files.write_json({"run": "rerun"}, target)
    assert files.read_json(target) == {"run": "rerun"}


def _payload(kind, writer):
    if kind == "json":
        return {"writer": writer, "blob": [writer] * 5000}
    return {"writer": torch.tensor(writer), "blob": torch.full((50_000,), float(writer))}


def _write(kind, writer, path):
    if kind == "json":
        files.write_json(_payload(kind, writer), path)
    else:
        files.save_tensors(_payload(kind, writer), path)


def _assert_complete(folder, targets):
    """Each final file is exactly one writer's whole payload; no temporary is left."""
    for (kind, name), writers in targets.items():
        path = folder / name
        got = files.read_json(path) if kind == "json" else files.load_tensors(path)
        assert int(got["writer"]) in writers
        want = _payload(kind, int(got["writer"]))
        assert (got["blob"] == want["blob"]) if kind == "json" else torch.equal(got["blob"], want["blob"])
    assert sorted(p.name for p in folder.iterdir()) == sorted(name for _, name in targets)


def _held_open(real, names, barrier):
    """atomic_path that records its temporary and waits until every writer holds one at the same time."""

    @contextlib.contextmanager
    def atomic_path(path):
        with real(path) as tmp:
            names.append(tmp.name)
            barrier.wait(timeout=30)
            yield tmp

    return atomic_path


# Two writers per final name (as two jobs racing on one folder would), half JSON, half tensors.
JOBS = [(kind, f"{kind}{i // 2}.{'json' if kind == 'json' else 'pt'}", i) for kind in ("json", "pt") for i in range(8)]


def _targets():
    targets = {}
    for kind, name, writer in JOBS:
        targets.setdefault((kind, name), set()).add(writer)
    return targets


def test_concurrent_threads_never_share_a_temporary(tmp_path, monkeypatch):
    names, on_disk = [], []
    barrier = threading.Barrier(len(JOBS), action=lambda: on_disk.append(sorted(p.name for p in tmp_path.glob(".*.tmp"))))
    monkeypatch.setattr(files, "atomic_path", _held_open(files.atomic_path, names, barrier))
    errors = []

    def job(kind, name, writer):
        try:
            _write(kind, writer, tmp_path / name)
        except BaseException as exc:  # noqa: BLE001 (reported below, in the main thread)
            errors.append(exc)

    threads = [threading.Thread(target=job, args=j) for j in JOBS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert len(names) == len(set(names)) == len(JOBS)
    assert on_disk == [sorted(names)]
    _assert_complete(tmp_path, _targets())


def _process_job(jobs, folder, barrier, queue):
    names = []
    files.atomic_path = _held_open(files.atomic_path, names, barrier)  # this forked child's copy only
    for kind, name, writer in jobs:
        _write(kind, writer, folder / name)
    queue.put(names)


def test_concurrent_processes_never_share_a_temporary(tmp_path):
    """Separate processes, like Snakemake's jobs: each writer's temporary is held open until all four hold one."""
    ctx = multiprocessing.get_context("fork")
    barrier, queue = ctx.Barrier(4), ctx.Queue()
    # Process p writes JOBS[p::4]: four rounds in which four processes hold a temporary at once.
    procs = [ctx.Process(target=_process_job, args=(JOBS[p::4], tmp_path, barrier, queue)) for p in range(4)]
    for p in procs:
        p.start()
    names = [n for _ in procs for n in queue.get(timeout=60)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len(names) == len(set(names)) == len(JOBS)
    _assert_complete(tmp_path, _targets())
