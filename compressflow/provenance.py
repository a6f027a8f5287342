"""Per-artifact provenance: hashes of every input and output, config, versions, commit, seed."""

from __future__ import annotations

from pathlib import Path

from compressflow import files, sysinfo
from compressflow.verify import sha256


def _hashes(named: dict) -> dict:
    out = {}
    for name, value in named.items():
        paths = value if isinstance(value, (list, tuple)) else [value]
        for i, p in enumerate(paths):
            key = name if len(paths) == 1 else f"{name}[{i}]"
            out[key] = {"path": str(p), "sha256": sha256(p) if Path(p).is_file() else None}
    return out


def record(rule: str, inputs: dict, outputs: dict, params: dict, seed, repo_dir, device: str | None = None) -> dict:
    """The provenance record of one job (no timings, so it is reproducible byte for byte).

    ``code_digest`` is the digest of the library code the rule's script reaches (its ``code`` param,
    see :mod:`compressflow.codedigest`); ``git_commit`` ends in ``+dirty`` when tracked files had
    uncommitted changes, which ``git_dirty`` says as a boolean. ``device`` is where a device rule
    trained or measured accuracy (``cpu`` or ``cuda:0 <GPU name>``, see :mod:`compressflow.device`).
    """
    commit = sysinfo.git_commit(repo_dir)
    row = {
        "rule": rule,
        "inputs": _hashes(inputs),
        "outputs": _hashes(outputs),
        "params": params,
        "seed": seed,
        "versions": sysinfo.versions(),
        "code_digest": params.get("code"),
        "git_commit": commit,
        "git_dirty": commit.endswith("+dirty"),
    }
    if device is not None:
        row["device"] = device
    return row


def write(path, **kwargs) -> None:
    files.write_json(record(**kwargs), path)


def write_environment(txt_path, yml_path) -> None:
    """``pip freeze``-style and conda-style records of the environment that ran the workflow."""
    import platform

    pkgs = sysinfo.installed_packages()
    with files.atomic_path(txt_path) as tmp:
        tmp.write_text("".join(f"{n}=={v}\n" for n, v in pkgs))
    lines = [
        "name: compressflow",
        "channels:",
        "  - conda-forge",
        "  - nodefaults",
        "dependencies:",
        f"  - python={platform.python_version()}",
        "  - pip",
        "  - pip:",
    ]
    lines += [f"      - {n}=={v}" for n, v in pkgs if n != "compressflow"]
    with files.atomic_path(yml_path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
