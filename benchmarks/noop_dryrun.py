"""How long ``snakemake -n`` takes on a finished workflow (nothing to do): the cost of every edit-check cycle.

python benchmarks/noop_dryrun.py --directory /path/to/run --configfile config/config.yaml --repeat 5
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def slurm_state() -> str:
    """The SLURM executor plugin runs ``scontrol show config`` when Snakemake imports it: with the client
    installed but no controller reachable, every Snakemake start waits about 9 s. Record which case ran."""
    if shutil.which("scontrol") is None:
        return "no slurm client"
    try:
        ok = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=15).returncode == 0
    except subprocess.TimeoutExpired:
        ok = False
    return "slurm controller up" if ok else "slurm client, controller unreachable"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--directory", required=True, type=Path, help="a workflow directory whose results are up to date")
    p.add_argument("--configfile", type=Path, default=REPO / "config" / "config.yaml")
    p.add_argument("--snakefile", type=Path, default=REPO / "Snakefile")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "noop_dryrun.csv")
    args = p.parse_args(argv)
    cmd = [sys.executable, "-m", "snakemake", "-n", "-q", "-s", str(args.snakefile), "--directory", str(args.directory)]
    cmd += ["--configfile", str(args.configfile)]
    times, pending = [], None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            sys.exit(f"snakemake -n failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        pending = "Nothing to be done" not in proc.stdout + proc.stderr
    row = {
        "directory": str(args.directory),
        "configfile": str(args.configfile),
        "repeat": args.repeat,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "jobs_pending": pending,
        "slurm": slurm_state(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
    print(
        f"snakemake -n: median {row['median_s']:.2f} s (min {row['min_s']:.2f}, max {row['max_s']:.2f}) over {args.repeat}; jobs pending: {pending}; {row['slurm']}"
    )


if __name__ == "__main__":
    main()
