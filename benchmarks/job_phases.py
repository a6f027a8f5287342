"""Where a finished run's job-seconds go, per rule: start-up and imports, verifying inputs, loading, the work, writing, provenance.

Every job's log ends with one ``compressflow phases:`` line (``compressflow/phases.py``, written by
``compressflow.smk.run``); this sums them per rule, beside Snakemake's own wall seconds of the same jobs
(``results/benchmarks/**/<rule>.tsv``), whose difference from the phases' sum is the time outside the step
runner (Snakemake's job start-up before Python runs the script). Prints a Markdown table; ``--csv`` also
writes one row per rule.

    python benchmarks/job_phases.py --run /tmp/cf-tour --csv benchmarks/job_phases.csv
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def collect(run: Path) -> dict:
    """rule -> {"jobs": n, phase: summed seconds, ...} from every log of ``run``."""
    sys.path.insert(0, str(REPO))
    from compressflow import phases

    out = defaultdict(lambda: defaultdict(float))
    for log in sorted((run / "logs").rglob("*.log")):
        for rule, secs in phases.parse(log.read_text(errors="replace")):
            out[rule]["jobs"] += 1
            for k, v in secs.items():
                out[rule][k] += v
    sys.path.insert(0, str(REPO / "benchmarks"))
    from pipeline_time import per_rule

    _, wall = per_rule(run)
    for rule, row in out.items():
        row["job_wall"] = wall.get(rule, 0.0)
    return out


def table(rows: dict) -> str:
    from compressflow.phases import PHASES

    head = ["rule", "jobs", "job wall (s)", *[f"{p} (s)" for p in PHASES], "outside the runner (s)", "start-up share"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    total = defaultdict(float)
    for rule in sorted(rows, key=lambda r: -rows[r]["job_wall"]):
        row = rows[rule]
        inside = sum(row[p] for p in PHASES)
        outside = row["job_wall"] - inside
        cells = [rule, f"{int(row['jobs'])}", f"{row['job_wall']:.1f}", *[f"{row[p]:.1f}" for p in PHASES], f"{outside:.1f}"]
        cells.append(f"{(row['start'] + outside) / row['job_wall']:.0%}" if row["job_wall"] else "")
        lines.append("| " + " | ".join(cells) + " |")
        for k in ("jobs", "job_wall", *PHASES):
            total[k] += row[k]
        total["outside"] += outside
    share = (total["start"] + total["outside"]) / total["job_wall"] if total["job_wall"] else 0
    cells = [
        "**all**",
        f"{int(total['jobs'])}",
        f"{total['job_wall']:.1f}",
        *[f"{total[p]:.1f}" for p in PHASES],
        f"{total['outside']:.1f}",
        f"{share:.0%}",
    ]
    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True, help="a finished run's directory (holds logs/ and results/)")
    p.add_argument("--csv", type=Path, help="also write one row per rule here")
    args = p.parse_args(argv)
    rows = collect(args.run)
    if not rows:
        raise SystemExit(f"no 'compressflow phases:' lines under {args.run}/logs: run the workflow with this commit first")
    print(table(rows))
    if args.csv:
        from compressflow.phases import PHASES

        with open(args.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["rule", "jobs", "job_wall_s", *[f"{p}_s" for p in PHASES]])
            for rule in sorted(rows):
                r = rows[rule]
                w.writerow([rule, int(r["jobs"]), round(r["job_wall"], 2), *[round(r[p], 2) for p in PHASES]])


if __name__ == "__main__":
    main()
