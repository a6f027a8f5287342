"""What machine and software produced a number (recorded beside every timing)."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from pathlib import Path

ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16", "fma", "f16c")
PACKAGES = (
    "torch",
    "torchvision",
    "numpy",
    "onnx",
    "onnxruntime",
    "onnxscript",
    "onnxsim",
    "openvino",
    "nncf",
    "torch-pruning",
    "scikit-learn",
    "snakemake",
    "pandas",
)


def cpu() -> dict:
    model, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("unknown", "", platform.processor()):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return {"cpu_model": model, "isa": " ".join(f for f in ISA_FLAGS if f in flags)}


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def git_commit(repo_dir) -> str:
    """HEAD of the workflow's repository, with '+dirty' when tracked files changed."""
    try:
        head = subprocess.run(["git", "-C", str(repo_dir), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo_dir), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
        ).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def installed_packages() -> list[tuple[str, str]]:
    """(name, version) of every distribution in the running environment, sorted by name."""
    found = {(d.metadata["Name"] or "").lower(): d.version for d in importlib.metadata.distributions() if d.metadata["Name"]}
    return sorted(found.items())
