"""Known, expected incompatibilities of a technique with an architecture: they fail one variant, not the run.

A step raises :class:`Unsupported` only for a limitation it recognises (a specific exception type and
message from the library it calls, or a layer type it knows it cannot handle). ``compressflow.smk.run``
then writes every output of the job as an *unsupported marker* instead of failing it: JSON outputs get
``{"status": "unsupported", "reason": ...}`` (metrics files carry null numbers, so the report shows a row
saying so), other files one text line starting with :data:`MARKER`. A job whose input is such a marker
writes markers too, so every downstream variant and runtime row of an unsupported variant says so.
Anything else (a real bug) still fails the job loudly.
"""

from __future__ import annotations

import json
from pathlib import Path

from compressflow import files
from compressflow.errors import one_line

MARKER = b"compressflow-unsupported: "
STATUS = "unsupported"


class Unsupported(Exception):
    """``technique`` cannot handle ``layer`` (a module name or an op) of this architecture; ``fix`` says what to use instead."""

    def __init__(self, technique: str, layer: str, why: str, fix: str):
        self.technique, self.layer, self.why, self.fix = technique, one_line(layer), one_line(why), one_line(fix)
        self.reason = f"{technique} does not support {self.layer}: {self.why}"
        super().__init__(f"{self.reason}; fix: {self.fix}")


def first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip()
    return one_line(text.splitlines()[0] if text else type(exc).__name__)[:limit]


def record(reason: str, fix: str, source: str | None = None) -> dict:
    """The JSON written for an unsupported job (metrics files get these keys next to null numbers)."""
    out = {"status": STATUS, "reason": reason, "fix": fix}
    if source:
        out["unsupported_input"] = source
    return out


def marker_of(path) -> dict | None:
    """The unsupported record a job output holds, or None for a real artifact (also for a missing/unreadable file)."""
    path = Path(path)
    try:
        if not path.is_file():
            return None
        if path.suffix == ".json":
            if path.stat().st_size > 1 << 20:
                return None
            record_ = json.loads(path.read_text())
            return record_ if isinstance(record_, dict) and record_.get("status") == STATUS else None
        with open(path, "rb") as f:
            head = f.read(len(MARKER))
            if head != MARKER:
                return None
            return json.loads(f.read(1 << 16).decode())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def unsupported_input(inputs: dict) -> tuple[str, dict] | None:
    """(path, record) of the first input that is an unsupported marker."""
    for value in inputs.values():
        for path in value if isinstance(value, (list, tuple)) else [value]:
            rec = marker_of(path)
            if rec is not None:
                return str(path), rec
    return None


def write_markers(outputs: dict, reason: str, fix: str, source: str | None = None, extra_json: dict | None = None) -> None:
    """Every output of the job as an unsupported marker (provenance is written by the caller afterwards)."""
    rec = record(reason, fix, source)
    for key, value in outputs.items():
        if key == "provenance":
            continue
        for path in value if isinstance(value, (list, tuple)) else [value]:
            path = Path(path)
            if path.suffix == ".json":
                files.write_json({**(extra_json or {}), **rec} if key == "metrics" else rec, path)
            else:
                with files.atomic_path(path) as tmp:
                    tmp.write_bytes(MARKER + json.dumps(rec, sort_keys=True).encode() + b"\n")
