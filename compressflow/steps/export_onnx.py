"""Rule ``export_onnx``: ONNX export with checker, onnxsim and parity against PyTorch."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from compressflow import artifacts, data, files
from compressflow.errors import CompressflowError
from compressflow.runtimes import onnx


def export_onnx(inputs, outputs, params, threads):
    """Export, check, simplify if that keeps outputs, prove parity; ``model.onnx`` is the file chosen."""
    torch.set_num_threads(threads)
    model, recipe = artifacts.load_model(inputs["model"])
    x, _ = next(data.batches(data.load_split(inputs["val"]), params.get("parity_batch", 32)))
    tol = params["parity"]
    out = Path(outputs["onnx"])
    raw = out.with_name("model.raw.onnx")
    sim = out.with_name("model.sim.onnx")
    if any(t.get("kind") == "quantize" for t in recipe.get("transforms", [])):
        raise CompressflowError(
            f"'{inputs['model']}' is a quantized PyTorch model, which the ONNX exporter does not take",
            "deploy its float parent instead; the runtimes' own INT8 rows quantize it",
        )
    report = {"recipe": recipe, "input_shape": list(x.shape), "input_name": onnx.INPUT_NAME, "output_name": onnx.OUTPUT_NAME}
    try:
        report["export"] = onnx.export(
            model, x[:2], raw, opset=params["opset"], dynamic_batch=params["dynamic_batch"], dynamic_hw=params.get("dynamic_hw", True)
        )
        report["check"] = onnx.check(raw)
        report["nodes_raw"] = onnx.nodes(raw)
        if params["simplify"]:
            report["simplify"] = onnx.simplify(raw, sim, model, x, tol["max_abs_diff"])
            print(
                f"onnxsim: {'used' if report['simplify']['used'] else 'kept unsimplified: ' + report['simplify']['why']}", file=sys.stderr
            )
        else:
            report["simplify"] = {"used": False, "why": "deploy.simplify is false"}
        chosen = sim if report["simplify"]["used"] else raw
        report["chosen"] = "model.sim.onnx" if report["simplify"]["used"] else "model.raw.onnx"
        report["nodes"] = onnx.nodes(chosen)
        par = onnx.parity(model, chosen, x, threads)
        report["parity"] = dict(par, tolerance=tol)
        if par["max_abs_diff"] > tol["max_abs_diff"] or par["top1_agreement"] < tol["min_top1_agreement"]:
            raise CompressflowError(
                f"ONNX model differs from PyTorch on {par['n']} val images: max |logit diff| {par['max_abs_diff']:.3g} (limit {tol['max_abs_diff']:g}), "
                f"top-1 agreement {par['top1_agreement']:.3f} (limit {tol['min_top1_agreement']:g})",
                "try another deploy.opset or deploy.simplify: false; raise deploy.parity only if the drift is understood",
            )
        print(f"exported opset {params['opset']}: {report['nodes']} nodes, max |logit diff| {par['max_abs_diff']:.3g}", file=sys.stderr)
        with files.atomic_path(out) as tmp:
            tmp.write_bytes(chosen.read_bytes())
        files.write_json(report, outputs["report"])
    finally:
        raw.unlink(missing_ok=True)
        sim.unlink(missing_ok=True)
