"""Which device a job trains, calibrates and measures accuracy on (config ``device``), see docs/gpu.md.

Torch is imported inside the functions, so ``rules/common.smk`` can read :data:`CHOICES` and
:func:`gpus_requested` while parsing without importing torch. INT8 (torch.ao FX) models and every
latency measurement stay on the CPU whatever this resolves to: CPU latency rows stay CPU rows.
"""

from __future__ import annotations

import os
import sys

from compressflow.errors import CompressflowError

CHOICES = ("auto", "cpu", "cuda")
CUBLAS_WORKSPACE = ":4096:8"  # what torch.use_deterministic_algorithms needs for deterministic cuBLAS
_USED: str | None = None  # set by use(): one job per process, so this is the job's device


def gpus_requested(setting: str) -> int:
    """GPUs a device-using job asks a cluster for: only ``device: cuda`` asks (``auto`` cannot know the
    compute node from the submitting host, so it asks for none and uses a GPU only if its node shows one)."""
    return 1 if setting == "cuda" else 0


def nvidia_driver_present(root: str = "/") -> bool:
    """Whether this host shows an NVIDIA driver with a GPU (no torch import: for the check before any job)."""
    gpus = os.path.join(root, "proc", "driver", "nvidia", "gpus")
    return (os.path.isdir(gpus) and bool(os.listdir(gpus))) or os.path.exists(os.path.join(root, "dev", "nvidia0"))


def check_local(setting: str, root: str = "/") -> None:
    """Before any job of a local run: ``device: cuda`` on a host without an NVIDIA GPU stops the run.

    Not for cluster runs, whose jobs land on other hosts; there the first device job fails with
    :func:`resolve`'s line instead.
    """
    if setting == "cuda" and not nvidia_driver_present(root):
        raise CompressflowError(
            "device: cuda, but this machine shows no NVIDIA GPU (no /proc/driver/nvidia/gpus, no /dev/nvidia0)",
            "use device: auto or cpu here, or run on a machine (or cluster node) with an NVIDIA GPU",
        )


def resolve(setting: str):
    """``auto`` -> ``cuda`` when torch sees a CUDA device, else ``cpu``; ``cuda`` without one is an error."""
    import torch

    if setting not in CHOICES:
        raise CompressflowError(f"device '{setting}'", f"use one of {', '.join(CHOICES)}")
    if setting == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    if setting == "cuda":
        raise CompressflowError(
            "device: cuda, but torch sees no CUDA device on this machine"
            f" (torch {torch.__version__}, built with CUDA {torch.version.cuda})",
            "use device: auto or cpu, run on a machine with an NVIDIA GPU, or install a CUDA build of torch",
        )
    return torch.device("cpu")


def use(setting: str):
    """Resolve ``setting`` and make CUDA as deterministic as it can be (call after ``train.seed_everything``).

    On CUDA: cuDNN deterministic, no autotuning, cuBLAS workspace pinned, and deterministic algorithms
    with ``warn_only=True`` (some CUDA kernels have no deterministic version, e.g. the backward of
    adaptive average pooling; those warn in the job's log instead of failing it).
    """
    import torch

    dev = resolve(setting)
    if dev.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.use_deterministic_algorithms(True, warn_only=True)
    global _USED
    _USED = describe(dev)
    print(f"device: {_USED} (config device: {setting})", file=sys.stderr)
    return dev


def used() -> str | None:
    """What :func:`use` last resolved to in this process (the job), for its provenance; None if never called."""
    return _USED


def describe(dev) -> str:
    """``cpu`` or ``cuda:0 NVIDIA H200``: what provenance and metrics record."""
    import torch

    dev = torch.device(dev)
    if dev.type != "cuda":
        return dev.type
    index = dev.index if dev.index is not None else torch.cuda.current_device()
    return f"cuda:{index} {torch.cuda.get_device_name(index)}"


def of(model) -> object:
    """The device a model's parameters (or buffers) live on; CPU for a model with neither."""
    import torch

    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def is_int8(model) -> bool:
    """A torch.ao quantized model (static, dynamic or mixed): these kernels exist only on the CPU."""
    return any(
        type(m).__module__.startswith(("torch.ao.nn.quantized", "torch.nn.quantized", "torch.ao.nn.intrinsic.quantized"))
        for m in model.modules()
    )


def amp_context(amp, dev):
    """The autocast context of one training step, and whether a GradScaler is needed.

    AMP runs only on CUDA; on the CPU it is ignored (the CPU path stays the fp32 reference).
    """
    import contextlib

    import torch

    if not amp or torch.device(dev).type != "cuda":
        return contextlib.nullcontext(), False
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    return torch.autocast("cuda", dtype=dtype), amp == "fp16"


def amp_note(amp, dev) -> str | None:
    """Why a requested AMP setting did not apply, for the log and history.json (None when it did or was off)."""
    import torch

    if amp and torch.device(dev).type != "cuda":
        return f"train.amp: {amp} ignored: AMP runs only on CUDA and this job runs on the CPU (trained in fp32)"
    return None
