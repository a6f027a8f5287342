"""The PyTorch 2 runtimes: ``torch.compile`` (inductor, ``freezing=True``) and AOTInductor packages (``.pt2``).

``torch.compile`` is what a PyTorch user tries first, so it is the peer every speed-up is compared with.
Freezing folds weights into constants and prepacks them for the CPU kernels; PT2E INT8 graphs only
become INT8 kernels with it (without it their Q/DQ ops run as float reference code: no speed-up).

Inductor caches compiled kernels in ``TORCHINDUCTOR_CACHE_DIR``; ``cache_dir`` points it at a folder of
the caller's choosing (a job's own tmp dir) so nothing leaks into ``~`` or ``/tmp`` shared with others.
The cache never enters an artifact's bytes.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import torch

from compressflow import files

__all__ = ["FREEZING", "cache_dir", "compile_model", "aoti_package", "aoti_load"]

FREEZING = True
SETTING = "torch.compile inductor, freezing=True"  # recorded in every metrics.json these runtimes write


@contextlib.contextmanager
def cache_dir(path):
    """Inductor's kernel cache in ``path`` for the duration (restores the previous setting)."""
    old = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(path).resolve())
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
        else:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = old


def compiler():
    """``torch.compile`` with this module's settings (inductor, freezing), as a function of the model."""
    from torch._inductor import config as inductor_config

    inductor_config.freezing = FREEZING

    def compile_(model):
        model.eval()  # not chained: an exported graph's patched eval() does not return the module
        return torch.compile(model, backend="inductor", dynamic=False)

    return compile_


def compile_model(model: torch.nn.Module, example: torch.Tensor, threads: int):
    """``torch.compile`` with inductor and freezing; returns (compiled module, compile seconds).

    The first call compiles: it is timed here, apart from latency, so the latency loop's warm-up never
    hides a compile.
    """
    torch.set_num_threads(threads)
    compiled = compiler()(model)
    start = time.perf_counter()
    with torch.no_grad():
        compiled(example)
    return compiled, time.perf_counter() - start


def aoti_package(model: torch.nn.Module, example: torch.Tensor, path) -> float:
    """An AOTInductor package (``.pt2``): C++-loadable with ``AOTIModelPackageLoader``, no Python needed.

    Returns the build seconds. The batch is dynamic; height and width are those of ``example`` (export
    specializes on 1×1 feature maps, so one package cannot serve every size: see ``quantize/pt2e.py``).

    Export and packaging run under ``torch.no_grad()``: inductor freezes (folds the weights, prepacks
    them for oneDNN, fuses PT2E Q/DQ into INT8 kernels) only when grad is off. With grad on, the
    ResNet18 packages were 1.9× (FP32) and 5.7× (PT2E INT8) slower than with it off
    (24.3 vs 13.2 ms, 17.0 vs 3.0 ms, batch 1, 224², 2 threads, Intel Xeon AMX).
    """
    from torch._inductor import aoti_compile_and_package
    from torch._inductor import config as inductor_config

    model.eval()
    inductor_config.freezing = FREEZING
    start = time.perf_counter()
    from compressflow.quantize.pt2e import dynamic_shapes

    with torch.no_grad(), files.atomic_path(path) as tmp:
        ep = torch.export.export(model, (example,), dynamic_shapes=dynamic_shapes())  # batch only
        os.remove(tmp)  # the packager refuses to write over a file; it needs a path ending in .pt2
        pt2 = str(tmp) + ".pt2"
        aoti_compile_and_package(ep, package_path=pt2)
        os.replace(pt2, tmp)
    return time.perf_counter() - start


def aoti_load(path, threads: int):
    """A loaded package as a callable on ``threads`` intra-op threads."""
    from torch._inductor import aoti_load_package

    torch.set_num_threads(threads)
    runner = aoti_load_package(str(path))

    @torch.no_grad()
    def run(x):
        return runner(x)

    return run
