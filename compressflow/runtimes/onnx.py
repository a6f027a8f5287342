"""PyTorch -> ONNX: one self-contained file, checked, simplified when that is safe, and proven equal.

The dynamo exporter (``torch.onnx.export(dynamo=True)``) is the one torch 2.14 supports; it
needs ``dynamic_shapes`` with ``torch.export.Dim`` (``dynamic_axes`` only warns). Height and
width are dynamic too, so one file serves accuracy at the data's size and latency at 224 px.

Also the ONNX Runtime CPU session (:func:`session`, :func:`run_onnx`) that the parity check, the
ONNX Runtime rows and the benchmark all open: it lives here so the export rule's code digest does not
cover ONNX Runtime's quantizer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from compressflow import files
from compressflow.errors import CompressflowError

MIN_OPSET = 18  # the dynamo exporter fails to convert these models at opset 17
MAX_OPSET = 25  # newest opset the exporter writes natively and ONNX Runtime 1.31 loads (26 is down-converted, 28 fails to load)
INPUT_NAME, OUTPUT_NAME = "input", "logits"

__all__ = [
    "MIN_OPSET",
    "MAX_OPSET",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "max_opset",
    "check_opset",
    "export",
    "check",
    "session",
    "run_onnx",
    "parity",
    "simplify",
    "nodes",
]


def max_opset() -> int:
    import onnx

    return min(MAX_OPSET, int(onnx.defs.onnx_opset_version()))


def check_opset(opset: int) -> None:
    top = max_opset()
    if not isinstance(opset, int) or not MIN_OPSET <= opset <= top:
        raise CompressflowError(
            f"deploy.opset={opset!r} is not supported", f"use an opset from {MIN_OPSET} to {top} (onnx {_onnx_version()})"
        )


def _onnx_version() -> str:
    import onnx

    return onnx.__version__


def export(model: torch.nn.Module, example: torch.Tensor, path, *, opset: int, dynamic_batch: bool = True, dynamic_hw: bool = True) -> dict:
    """Export ``model`` to one ONNX file (weights inside, no external data)."""
    check_opset(opset)
    model.eval()
    dims = {}
    if dynamic_batch:
        dims[0] = torch.export.Dim("batch", min=1, max=65536)
    if dynamic_hw:
        side = int(example.shape[-1])
        dims[2] = torch.export.Dim("height", min=min(side, 16), max=4096)
        dims[3] = torch.export.Dim("width", min=min(side, 16), max=4096)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamo=True,
            external_data=False,
            dynamic_shapes={"x": dims} if dims else None,
            verbose=False,
        )
    except CompressflowError:
        raise
    except Exception as exc:  # the exporter raises many types; one line says which step failed
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CompressflowError(
            f"torch.onnx.export failed at opset {opset} ({type(exc).__name__}: {first[:200]})",
            "try another deploy.opset or set deploy.dynamic_batch: false",
        ) from exc
    return {"opset": opset, "dynamic_batch": dynamic_batch, "dynamic_hw": dynamic_hw}


def check(path) -> dict:
    """onnx.checker with full shape inference: a file that fails it is never deployed."""
    import onnx

    try:
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CompressflowError(
            f"exported ONNX '{path}' fails onnx.checker ({first[:200]})", "report this model/opset pair; try another deploy.opset"
        ) from exc
    return {"checker": "passed (full_check=True)"}


def session(path, threads: int = 1):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run_onnx(sess, x: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(x.numpy())})[0])


def parity(model: torch.nn.Module, onnx_path, x: torch.Tensor, threads: int = 1) -> dict:
    """How far the ONNX file's logits are from PyTorch's on the same batch."""
    with torch.no_grad():
        ref = model(x)
    out = run_onnx(session(onnx_path, threads), x)
    return {
        "max_abs_diff": float((out - ref).abs().max()),
        "top1_agreement": float((out.argmax(1) == ref.argmax(1)).float().mean()),
        "n": int(x.shape[0]),
    }


def simplify(src, dst, model: torch.nn.Module, x: torch.Tensor, max_abs_diff: float) -> dict:
    """Run onnxsim into ``dst``; report whether it may be used, and why not."""
    import onnx
    import onnxsim

    try:
        simplified, ok = onnxsim.simplify(onnx.load(str(src)))
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return {"used": False, "why": f"onnxsim raised {type(exc).__name__}: {first[:200]}"}
    if not ok:
        return {"used": False, "why": "onnxsim's own check failed"}
    with files.atomic_path(dst) as tmp:
        onnx.save(simplified, str(tmp))
    try:
        check(dst)
    except CompressflowError as exc:
        return {"used": False, "why": f"simplified model fails the checker: {exc.what}"}
    par = parity(model, dst, x)
    if par["max_abs_diff"] > max_abs_diff:
        return {"used": False, "why": f"simplified outputs differ by {par['max_abs_diff']:.3g} (> {max_abs_diff:g})", "parity": par}
    return {"used": True, "parity": par}


def nodes(path) -> int:
    import onnx

    return len(onnx.load(str(path)).graph.node)


# --- workflow step ----------------------------------------------------------------------------------------------------
