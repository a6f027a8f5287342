"""Wall time of a whole run from an empty ``results/`` (what ``make run`` costs), and where it goes per rule.

python benchmarks/pipeline_time.py --configfile config/config.yaml --cores 2 --directory /tmp/cf-run
python benchmarks/pipeline_time.py --configfile tests/tiny_config.yaml --from-run /path/to/finished/run

Job-seconds per rule come from Snakemake's own per-job ``benchmark:`` files (``results/benchmarks/**/<rule>.tsv``,
one per job, every rule has one), the wall time from this script's clock (or, with ``--from-run``, from the
first and last timestamps of that run's newest Snakemake log), the commit from the Snakefile's git checkout as the
run starts (``+dirty``: with uncommitted changes). Appends one row to ``benchmarks/pipeline_time.csv``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIELDS = [
    "date",
    "cpu_model",
    "cores",
    "config",
    "commit",
    "wall_s",
    "jobs",
    "job_seconds",
    "source",
    "jobs_by_rule",
    "job_seconds_by_rule",
]


def per_rule(directory: Path) -> tuple[dict, dict]:
    """(rule -> job count, rule -> summed wall seconds) from every ``results/benchmarks/**/<rule>.tsv``."""
    jobs, seconds = defaultdict(int), defaultdict(float)
    for tsv in sorted((directory / "results" / "benchmarks").rglob("*.tsv")):
        with open(tsv, newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        for row in rows:  # one row per repeat; Snakemake writes one unless `repeat()` asks for more
            jobs[tsv.stem] += 1
            seconds[tsv.stem] += float(row["s"])
    return dict(sorted(jobs.items())), {k: round(v, 2) for k, v in sorted(seconds.items())}


def log_span(directory: Path) -> float:
    """Seconds between the first and last ``[timestamp]`` of the newest Snakemake log in ``directory``."""
    logs = sorted((directory / ".snakemake" / "log").glob("*.snakemake.log"), key=os.path.getmtime)
    if not logs:
        raise SystemExit(f"no Snakemake log under {directory}/.snakemake/log: pass a run directory, or run one")
    stamps = re.findall(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]", logs[-1].read_text(), re.M)
    if len(stamps) < 2:
        raise SystemExit(f"{logs[-1]} has fewer than two timestamps: not a finished run")
    times = [dt.datetime.strptime(" ".join(s.split()), "%a %b %d %H:%M:%S %Y") for s in stamps]
    return (times[-1] - times[0]).total_seconds()


def commit(snakefile: Path) -> str:
    """The commit of the code that ran (``+dirty`` with uncommitted changes to tracked files), or ``unknown``."""
    git = ["git", "-C", str(snakefile.resolve().parent)]
    head = subprocess.run([*git, "rev-parse", "--short=7", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return "unknown"
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
    return head.stdout.strip() + ("+dirty" if dirty else "")


def append(row: dict, out: Path) -> None:
    """Append ``row`` to ``out``; a file written with other columns is an error, never rewritten."""
    if out.exists():
        with open(out, newline="") as f:
            header = next(csv.reader(f), [])
        if header != FIELDS:
            raise SystemExit(f"{out} has columns {header}, not {FIELDS}: pass another --out, or add the missing columns to it")
    new = not out.exists()
    with open(out, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        if new:
            w.writeheader()
        w.writerow(row)


def run(directory: Path, configfile: Path, cores: str, snakefile: Path) -> float:
    if (directory / "results").exists():
        raise SystemExit(f"{directory}/results exists: pass an empty directory (the run must start from nothing)")
    directory.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "--directory", str(directory)]
    cmd += ["--profile", str(REPO / "profiles" / "default"), "--configfile", str(configfile.resolve()), "--cores", cores]
    start = time.monotonic()
    with open(directory / "pipeline_time.log", "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
    return time.monotonic() - start


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configfile", type=Path, default=REPO / "config" / "config.yaml")
    p.add_argument("--cores", default="all")
    p.add_argument("--directory", type=Path, help="an empty directory to run in (default: a new one under /tmp)")
    p.add_argument("--from-run", type=Path, help="read a finished run instead of running one")
    p.add_argument("--snakefile", type=Path, default=REPO / "Snakefile")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "pipeline_time.csv")
    args = p.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from compressflow import sysinfo

    code = "unknown (read from a finished run)" if args.from_run else commit(args.snakefile)  # the code the run starts with
    if args.from_run:
        directory, wall, source = args.from_run, log_span(args.from_run), "snakemake log of a finished run"
    else:
        directory = args.directory or Path(f"/tmp/compressflow-pipeline-time-{os.getpid()}")
        wall, source = run(directory, args.configfile, args.cores, args.snakefile), "fresh run timed by this script"
    jobs, seconds = per_rule(directory)
    cores = os.cpu_count() if args.cores == "all" else int(args.cores)
    try:
        config = str(args.configfile.resolve().relative_to(REPO))
    except ValueError:
        config = str(args.configfile)
    row = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_model": sysinfo.cpu()["cpu_model"],
        "cores": cores,
        "config": config,
        "commit": code,
        "wall_s": round(wall, 1),
        "jobs": sum(jobs.values()),
        "job_seconds": round(sum(seconds.values()), 1),
        "source": source,
        "jobs_by_rule": json.dumps(jobs),
        "job_seconds_by_rule": json.dumps(seconds),
    }
    append(row, args.out)
    print(f"{config} on {row['cpu_model']}, {cores} cores: {row['wall_s']} s wall, {row['jobs']} jobs, {row['job_seconds']} job-s")
    for rule in sorted(seconds, key=seconds.get, reverse=True):
        print(f"  {rule:24s} {jobs[rule]:4d} jobs {seconds[rule]:9.1f} s")


if __name__ == "__main__":
    main()
