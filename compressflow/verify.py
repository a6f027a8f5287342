"""Artifacts are checked against the sha256 their provenance recorded before anything uses them.

Every job that writes provenance records the sha256 of each of its outputs in a
``*provenance.json`` beside them. Before a step loads an input, :func:`inputs` finds the record
that lists it and compares; at parse time :func:`changed_artifacts` does the same for every
artifact modified after its record was written (cheap: a stat per file, a hash only for those),
so a corrupt file stops the run before Snakemake deletes anything built from it.

Files no record lists (a user's checkpoint, the image tree, config files) are not verified here:
the config check opens them before any job starts, and the dataset manifest tracks the images.
Standard library only: this runs at parse time, where torch must not be imported.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

from compressflow.errors import CompressflowError

RECORD_GLOB = "*provenance.json"
# Seconds an output may postdate its record: Snakemake touches a job's outputs one by one afterwards.
MTIME_SLACK = 2.0


_HASHED: dict = {}


def sha256(path) -> str:
    """sha256 of a file, remembered per (inode, size, mtime): a job hashes each input once."""
    st = os.stat(path)
    key = (_key(os.path.abspath(path)), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _HASHED:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _HASHED[key] = h.hexdigest()
    return _HASHED[key]


def _key(path) -> str:
    return os.path.normpath(str(path))


def records_in(folder) -> list[tuple[Path, dict]]:
    """Every provenance record in ``folder`` (unreadable ones are skipped: their job reruns anyway)."""
    out = []
    for p in sorted(Path(folder).glob(RECORD_GLOB)):
        try:
            record = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and isinstance(record.get("outputs"), dict):
            out.append((p, record))
    return out


def _recorded(records) -> dict:
    """{normalised output path: (sha256, rule, record path)} over ``records``."""
    out = {}
    for p, record in records:
        for entry in record["outputs"].values():
            if isinstance(entry, dict) and entry.get("sha256"):
                out[_key(entry["path"])] = (entry["sha256"], record.get("rule", "?"), p)
    return out


def mismatch(path, record_path, rule) -> CompressflowError:
    return CompressflowError(
        f"artifact '{path}' does not match the sha256 recorded in '{record_path}' (corrupt, or changed after rule {rule} wrote it)",
        f"rebuild it with --forcerun {rule} (or delete it and rerun)",
    )


def inputs(files: dict) -> dict:
    """Verify every input a provenance record beside it lists; return {path: sha256} of those hashed.

    Each file is hashed once: the job's own provenance record reuses these hashes.
    """
    hashes, by_folder = {}, {}
    for value in files.values():
        for path in value if isinstance(value, (list, tuple)) else [value]:
            path = str(path)
            if path in hashes or not os.path.isfile(path):
                continue
            folder = os.path.dirname(path) or "."
            if folder not in by_folder:
                by_folder[folder] = _recorded(records_in(folder))
            entry = by_folder[folder].get(_key(path))
            if entry is None:
                continue
            expected, rule, record_path = entry
            hashes[path] = sha256(path)
            if hashes[path] != expected:
                raise mismatch(path, record_path, rule)
    return hashes


def _incomplete(path, incomplete_dir) -> bool:
    """Snakemake's marker of a job that was interrupted while writing ``path`` (it reruns that job)."""
    return os.path.exists(os.path.join(incomplete_dir, base64.urlsafe_b64encode(str(path).encode()).decode()))


def changed_artifacts(results="results", forced=frozenset(), forceall=False, incomplete_dir=".snakemake/incomplete"):
    """The first artifact under ``results`` whose bytes differ from its record, as an error (else None).

    Only files modified after their record are hashed. Records of rules (or files) the user forces
    to rerun, and of jobs Snakemake knows were interrupted, are skipped: that rerun is the fix.
    """
    if forceall or not os.path.isdir(results):
        return None
    forced = {_key(f) for f in forced}
    for dirpath, _, names in os.walk(results):
        if not any(n.endswith("provenance.json") for n in names):
            continue
        for record_path, record in records_in(dirpath):
            rule = record.get("rule", "?")
            outputs = [e for e in record["outputs"].values() if isinstance(e, dict) and e.get("sha256")]
            if rule in forced or any(_key(e["path"]) in forced or _incomplete(e["path"], incomplete_dir) for e in outputs):
                continue
            stamp = record_path.stat().st_mtime
            for e in outputs:
                try:
                    newer = os.stat(e["path"]).st_mtime > stamp + MTIME_SLACK
                except OSError:
                    continue  # missing: its job reruns
                if newer and sha256(e["path"]) != e["sha256"]:
                    return mismatch(e["path"], record_path, rule)
    return None
