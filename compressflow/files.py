"""Files: atomic writes, JSON, CSV and tensor files loaded with ``weights_only=True``.

A leaf: it imports nothing of compressflow but its errors. Model files (recipe + state dict) are
:mod:`compressflow.artifacts`.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import filecmp
import glob
import json
import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path

from compressflow.errors import CompressflowError

_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a unique temporary path beside ``path``; rename it onto ``path`` on success.

    A crash leaves at most a ``.tmp`` file, never a half-written artifact under the
    real name, and parallel jobs never share a temporary name. When ``path`` already holds
    exactly the new bytes it is kept as it is, mtime included, so nothing downstream of an
    identical rewrite looks changed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; artifacts get the usual permissions
    try:
        yield Path(tmp)
        if not (path.is_file() and filecmp.cmp(tmp, path, shallow=False)):
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def remove_stale_temporaries(path) -> list[Path]:
    """Delete temporaries that killed writers of ``path`` left behind (``.<name>.<random>.tmp``).

    Only safe where one writer owns ``path`` at a time, as Snakemake guarantees for a job's outputs;
    never call it from inside ``atomic_path``.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[A-Za-z0-9_]{{8}}\.tmp")
    stale = [p for p in path.parent.glob(f".{glob.escape(path.name)}.*.tmp") if pattern.fullmatch(p.name)]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def write_json(obj, path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path):
    return json.loads(Path(path).read_text())


def save_tensors(obj, path) -> None:
    """torch.save through a temporary name (tensors and plain containers only).

    Saving to a file object keeps the archive's inner folder name fixed ("archive"); given a
    path, torch.save names it after the (random) temporary file and the bytes differ per run.
    """
    import torch  # here, not at the top: jobs that write only JSON/CSV (report, environment) start without torch

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def _is_torchscript(path: Path) -> bool:
    """A torch.jit.save archive: a zip with TorchScript ``code/`` and ``constants.pkl`` (torch.save's has neither)."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.split("/", 1)[-1].startswith("code/") for n in names) and any(n.endswith("constants.pkl") for n in names)


def load_tensors(path, what: str = "file"):
    """torch.load with ``weights_only=True`` and one-line errors for the usual failures."""
    import torch

    path = Path(path)
    if path.is_dir():
        raise CompressflowError(f"{what} '{path}' is a directory, not a file", "point it at the file inside (e.g. .../model.pt)")
    if not path.is_file():
        raise CompressflowError(f"{what} '{path}' does not exist", "check the path (relative paths start at the workflow directory)")
    if _is_torchscript(path):
        raise CompressflowError(
            f"{what} '{path}' is a TorchScript archive (torch.jit.save), not a checkpoint of weights",
            f"save its weights: torch.save(torch.jit.load('{path.name}').state_dict(), 'weights.pt'), and point the config at that",
        )
    try:
        # argparse.Namespace: the `args` torchvision's reference scripts save beside the weights (plain attributes).
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CompressflowError(
            f"refused to load {what} '{path}': it needs code to unpickle, which weights_only=True forbids ({first[:160]})",
            "save only tensors, e.g. torch.save(model.state_dict(), path)",
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CompressflowError(f"{what} '{path}' is truncated or corrupt ({first[:160]})", "re-create or re-download the file") from exc


def write_csv(rows: list[dict], path) -> None:
    """Rows of one dict each (the first row's keys are the header), written atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
