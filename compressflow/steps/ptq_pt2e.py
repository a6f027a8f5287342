"""Rule ``ptq_pt2e``: PT2E static INT8 (torch.export -> X86InductorQuantizer -> calibrate -> convert_pt2e)."""

from __future__ import annotations

import sys

import torch

from compressflow import artifacts, data, files, recipes
from compressflow.quantize import pt2e
from compressflow.quantize.units import input_size_of


def save_pt2e(prepared, recipe, t, outputs, extra: dict) -> None:
    """model.pt (recipe + the prepared graph's state, reloads weights-only), program.pt2 (torch.export.save
    of the converted graph) and pt2e.json (what the quantizer did)."""
    q = pt2e.convert(prepared)
    n = pt2e.count_qdq(q)
    untied = pt2e.untied_calls(prepared)
    artifacts.save_model(prepared, recipes.with_transform(recipe, t), outputs["model"])
    with files.atomic_path(outputs["program"]) as tmp:
        tmp.write_bytes(pt2e.program_bytes(q, t["input_size"]))
    report = {"api": pt2e.API, "quantizer": t["quantizer"], "qdq_nodes": n, "untied_module_calls": untied, **extra}
    files.write_json(report, outputs["report"])
    print(f"{t['mode']}_pt2e: {n} Q/DQ nodes; untied repeated calls: {', '.join(untied) or 'none'}", file=sys.stderr)


def ptq_pt2e(inputs, outputs, params, threads):
    torch.manual_seed(params["seed"])
    torch.set_num_threads(threads)
    model, recipe = artifacts.load_model(inputs["model"])
    calib = data.load_split(inputs["calib"])
    size = input_size_of(calib)
    prepared = pt2e.prepare(model, size, reduce_range=params["reduce_range"], fp32_layers=params["fp32_layers"])
    n = pt2e.calibrate(prepared, calib, params["calib_size"])
    t = pt2e.transform(size, qat=False, reduce_range=params["reduce_range"], fp32_layers=params["fp32_layers"], calib_size=n)
    save_pt2e(prepared, recipe, t, outputs, {"calib_images": n})
