"""The smallest program that does what tests/test_runtimes.py did to OpenVINO before the suite's SIGSEGV.

Each call of the old ``runtimes/openvino.compile_model`` made its own ``openvino.Core``; the Core was
dropped when the call returned while its compiled model and infer request lived on in the test's
fixtures, and later calls made more Cores. Here: a few such rounds, then the objects are freed in the
order pytest's fixture teardown and garbage collection freed them, then eager PyTorch runs (the next test).

    python docs/segfault_repro.py            # one Core per call, as before the fix
    python docs/segfault_repro.py --shared   # the process's one Core (compressflow.runtimes.openvino.core)

Run with ``python -X faulthandler`` to get the Python traceback of a crash; ``gdb -batch -ex run -ex bt
--args python docs/segfault_repro.py`` for the native one. docs/segfault.md says what was seen where.
"""

from __future__ import annotations

import gc
import sys
import tempfile
from pathlib import Path

import numpy as np
import openvino as ov
import torch

ROUNDS = 6


def model_file(folder: Path) -> Path:
    """A small conv net as OpenVINO IR (converted in memory from PyTorch)."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    path = folder / "model.xml"
    ov.save_model(ov.convert_model(net.eval(), example_input=torch.zeros(1, 3, 16, 16)), str(path), compress_to_fp16=False)
    return path


def main(shared: bool) -> None:
    one = ov.Core() if shared else None
    kept = []
    with tempfile.TemporaryDirectory() as d:
        path = model_file(Path(d))
        for i in range(ROUNDS):
            core = one or ov.Core()  # the old code: a Core per call, gone when the call returns
            hint = {"INFERENCE_PRECISION_HINT": "f32"} if i % 2 else {}
            compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_NUM_THREADS": 1, **hint})
            request = compiled.create_infer_request()
            request.infer({0: np.zeros((1, 3, 16, 16), np.float32)})
            kept.append((compiled, request, compiled.get_property("INFERENCE_PRECISION_HINT")))
            del core
        kept.reverse()  # fixture teardown frees the newest first
        del kept
        gc.collect()
    x = torch.randn(8, 3, 64, 64)
    for _ in range(20):  # the next test: eager PyTorch in the same process
        torch.nn.functional.conv2d(x, torch.randn(16, 3, 3, 3)).sum().item()
    print(f"no crash ({'one shared Core' if shared else 'a Core per call'}), OpenVINO {ov.__version__}, torch {torch.__version__}")


if __name__ == "__main__":
    main("--shared" in sys.argv)
