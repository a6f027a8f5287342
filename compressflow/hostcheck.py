"""Whether this host can run a runtime, decided cheaply at parse time: standard library only, no torch import."""

from __future__ import annotations

import importlib.util
import os
import shutil

NVIDIA_DEVICE = "/dev/nvidiactl"  # the NVIDIA driver's control node, present where a GPU is usable


def tensorrt_skip_reason() -> str | None:
    """Why TensorRT cannot run on this host (no ``tensorrt`` module, no NVIDIA device), or None."""
    if importlib.util.find_spec("tensorrt") is None:
        return "the tensorrt Python module is not installed"
    if not (os.path.exists(NVIDIA_DEVICE) or shutil.which("nvidia-smi")):
        return f"no NVIDIA GPU (no {NVIDIA_DEVICE}, no nvidia-smi)"
    return None
