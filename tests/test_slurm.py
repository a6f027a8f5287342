"""The real Snakefile through a real SLURM (`--workflow-profile profiles/slurm`): start it with .ci/slurm_up.sh."""

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
PROFILE = REPO / "profiles" / "slurm"
pytestmark = pytest.mark.slurm
RULE_JOBS = {
    "prepare_data": 1,
    "train_baseline": 1,
    "fuse": 1,
    "evaluate": 2,
    "make_report": 1,
    "record_environment": 1,
    "benchmark_artifact": 2,
    "collect_benchmarks": 1,
}


def _slurm_down_reason():
    if not shutil.which("sbatch"):
        return "sbatch is not on PATH: start a local SLURM with `sudo .ci/slurm_up.sh`"
    try:
        out = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer in 30 s: run .ci/slurm_up.sh"
    if out.returncode != 0 or not re.search(r"^(idle|mixed|allocated)", out.stdout, re.M):
        return f"no SLURM node is up (sinfo: {(out.stdout + out.stderr).strip() or 'nothing'}): run .ci/slurm_up.sh"
    return None


def _run(workdir, *args, timeout):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir)]
    cmd += ["--workflow-profile", str(PROFILE), *args]
    env = dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def test_profile_gives_every_job_bounded_threads(tmp_path):
    """`threads: workflow.cores` would ask SLURM for `cores` CPUs per job; the profile's set-threads must cap it."""
    out = _run(tmp_path, "--configfile", str(REPO / "tests" / "tiny_config.yaml"), "-n", timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    cores = yaml.safe_load((PROFILE / "config.yaml").read_text())["cores"]
    threads = [int(t) for t in re.findall(r"^\s+threads: (\d+)$", out.stdout + out.stderr, re.M)]
    assert threads and max(threads) < cores, threads
    assert "workflow specific profile" in out.stderr and "profiles/default" not in out.stderr


def start(workdir: Path) -> tuple[subprocess.Popen, str]:
    """Start the tiny workflow through SLURM in ``workdir`` without waiting: (process, job-name prefix).

    ``tests/conftest.py`` starts it as soon as the session has collected this file's tests, so its ~100 s of
    sbatch polling overlap the rest of the suite in the same pytest process; :func:`slurm_run` waits for it.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((REPO / "tests" / "tiny_config.yaml").read_text())
    # The point is the scheduler, not the model: one epoch, one variant, no deploy targets.
    config["models"]["resnet18"]["train"]["epochs"] = 1
    config["variants"] = {"fused": {"from": "fp32", "technique": "fuse"}}
    config.pop("deploy", None)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    prefix = f"cftest{uuid.uuid4().hex[:8]}"
    args = [
        "--configfile", str(workdir / "config.yaml"),
        "--slurm-no-account",  # no slurmdbd here: nothing to guess the account from
        "--slurm-keep-successful-logs",
        # poll every few seconds (defaults: 10 s, then 40 s after each finished job)
        "--seconds-between-status-checks", "2",
        "--slurm-init-seconds-before-status-checks", "2",
        "--slurm-jobname-prefix", prefix,
    ]  # fmt: skip
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir)]
    cmd += ["--workflow-profile", str(PROFILE), *args]
    env = dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning")
    log = open(workdir / "snakemake.out", "w")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, env=env), prefix


BACKGROUND = {}  # filled by tests/conftest.py: {"workdir", "proc", "prefix", "watcher"}


def scheduler_state() -> dict:
    """What slurmctld knows of its jobs right now. Read as soon as the run ends: it forgets finished jobs
    after MinJobAge (600 s here), and the background run ends long before its tests run."""
    squeue = subprocess.run(["squeue", "--states=all", "-h", "-o", "%i|%T|%j"], capture_output=True, text=True, check=True)
    scontrol = subprocess.run(["scontrol", "show", "job"], capture_output=True, text=True, check=True)
    return {"squeue": squeue.stdout, "scontrol": scontrol.stdout}


def watch(proc: subprocess.Popen, into: dict) -> None:
    """Wait for the run, then record the scheduler's state into ``into["state"]`` (a thread of conftest's)."""
    proc.wait()
    into["state"] = scheduler_state()


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory):
    reason = _slurm_down_reason()
    if reason:
        pytest.skip(reason)
    if BACKGROUND:
        workdir, proc, prefix = BACKGROUND["workdir"], BACKGROUND["proc"], BACKGROUND["prefix"]
    else:
        workdir = tmp_path_factory.mktemp("slurm")
        proc, prefix = start(workdir)
    try:
        proc.wait(timeout=900)
        if BACKGROUND:
            BACKGROUND["watcher"].join(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        jobs = subprocess.run(["squeue", "-h", "-o", "%i %j"], capture_output=True, text=True).stdout.split("\n")
        ids = [line.split()[0] for line in jobs if prefix in line]
        if ids:
            subprocess.run(["scancel", *ids])
        raise
    log = (workdir / "snakemake.out").read_text()
    assert proc.returncode == 0, log[-6000:]
    return workdir, log, prefix, BACKGROUND.get("state") or scheduler_state()


def test_workflow_finishes_with_artifacts(slurm_run):
    workdir, log, _, _ = slurm_run
    assert f"{sum(RULE_JOBS.values()) + 1} of {sum(RULE_JOBS.values()) + 1} steps (100%) done" in log
    for variant in ("fp32", "fused"):
        for name in ("model.pt", "metrics.json", "provenance.json"):
            assert (workdir / "results" / "resnet18" / variant / name).is_file(), (variant, name)
    df = pd.read_csv(workdir / "results" / "report" / "summary.csv")
    assert set(df.variant) == {"fp32", "fused"}


def test_every_job_went_through_sbatch(slurm_run):
    workdir, log, prefix, scheduler = slurm_run
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+) \(log: (\S+)\)", log)
    assert len(submitted) == sum(RULE_JOBS.values()), log[-3000:]
    for rule, n in RULE_JOBS.items():
        assert len(list((workdir / ".snakemake" / "slurm_logs" / f"rule_{rule}").rglob("*.log"))) == n, rule
    # slurmctld still knows the finished jobs (MinJobAge): each one ran under this run's name and completed.
    state = {i: (s, name) for i, s, name in (line.split("|") for line in scheduler["squeue"].split())}
    for jobid, slurm_log in submitted:
        assert state[jobid][0] == "COMPLETED" and state[jobid][1].startswith(prefix), (jobid, state.get(jobid))
        assert Path(slurm_log).is_file(), slurm_log
    # The profile's set-threads/set-resources reached sbatch.
    train = next(j for j, path in submitted if "/rule_train_baseline/" in path)
    job = next(block for block in scheduler["scontrol"].split("\n\n") if f"JobId={train} " in block)
    assert "NumCPUs=2 " in job and "MinMemoryNode=4000M" in job and "TimeLimit=02:00:00" in job, job
