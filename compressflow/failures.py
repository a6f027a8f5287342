"""Failed jobs: one record per failure, so the run goes on and its last lines and report say what failed.

A job that fails (a bug, or a bad input only the job can see) writes ``logs/failed/<rule>/<wildcards>.json``
before it exits non-zero, and removes it when it runs again and succeeds. With ``keep-going`` (the profiles
set it) Snakemake finishes every job that does not depend on a failed one; the Snakefile's ``onerror`` then
writes the report from what was built, with the failed rows marked (:func:`notes`), and prints one line per
failure as the run's last lines (:func:`summary_lines`).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from compressflow import files
from compressflow.errors import one_line

DIR = Path("logs") / "failed"


def record_path(rule: str, wildcards: dict) -> Path:
    slug = ",".join(f"{k}={v}" for k, v in wildcards.items()) or "all"
    return DIR / rule / (re.sub(r"[^A-Za-z0-9_.=,@+-]", "+", slug) + ".json")


def clear(rule: str, wildcards: dict) -> None:
    """A job that runs again starts without its old failure record."""
    record_path(rule, wildcards).unlink(missing_ok=True)


def write(rule: str, wildcards: dict, exc: BaseException, log, outputs: dict) -> dict:
    rec = {
        "rule": rule,
        "wildcards": dict(wildcards),
        "error": f"{type(exc).__name__}: {one_line(str(exc))[:400]}",
        "log": str(log) if log else None,
        "outputs": sorted(str(p) for v in outputs.values() for p in (v if isinstance(v, (list, tuple)) else [v])),
        "time": time.time(),
    }
    try:
        files.write_json(rec, record_path(rule, wildcards))
    except OSError:
        pass  # a full or read-only disk: the job's own one line already says so
    return rec


def line(rec: dict) -> str:
    """One line per failure: rule, model/variant, exception, log."""
    where = ", ".join(f"{k}={v}" for k, v in rec.get("wildcards", {}).items())
    log = f" (log: {rec['log']})" if rec.get("log") else ""
    return f"FAILED rule {rec['rule']}{f' ({where})' if where else ''}: {rec['error']}{log}"


def since(start: float, root: Path = DIR) -> list[dict]:
    """The failure records written at or after ``start`` (this run's), oldest first."""
    out = []
    for path in sorted(Path(root).glob("*/*.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and rec.get("time", 0) >= start:
            out.append(rec)
    return sorted(out, key=lambda r: r["time"])


_SNAKEMAKE_ERROR = re.compile(r"^Error in rule (\w+):\s*$")


def snakemake_failures(log_text: str) -> list[tuple[str, str]]:
    """(rule, log) of every ``Error in rule`` block of Snakemake's log: also the failures that wrote no record
    (a job killed for memory, an output the job did not write, a conda env that did not build)."""
    out, lines = [], log_text.splitlines()
    for i, text in enumerate(lines):
        m = _SNAKEMAKE_ERROR.match(text.strip())
        if not m:
            continue
        log = ""
        for follow in lines[i + 1 : i + 12]:
            follow = follow.strip()
            if follow.startswith("log:"):
                log = follow[len("log:") :].split(" (check log")[0].strip()
                break
            if follow.startswith("Error in rule"):
                break
        if (m.group(1), log) not in out:
            out.append((m.group(1), log))
    return out


def summary_lines(records: list[dict], log_text: str = "") -> list[str]:
    """The run's closing lines: each failure once (our record, else Snakemake's own ``Error in rule``)."""
    lines = [line(r) for r in records]
    seen = {(r["rule"], r.get("log") or "") for r in records}
    for rule, log in snakemake_failures(log_text):
        if (rule, log) not in seen:
            lines.append(f"FAILED rule {rule}: see {'its log ' + log if log else 'the Snakemake log'}")
    return lines


def notes(records: list[dict]) -> dict:
    """The report note for what a failed job did not write: keyed by each output path, and by (model, variant)."""
    out = {}
    for r in records:
        note = f"failed: {r['error']} (rule {r['rule']}, log: {r['log']})"
        for path in r.get("outputs", []):
            out.setdefault(path, note)
        w = r.get("wildcards", {})
        if "model" in w and "variant" in w:
            out.setdefault((w["model"], w["variant"]), note)
    return out
