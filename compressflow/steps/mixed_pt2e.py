"""Rule ``mixed_pt2e``: PT2E mixed precision, the successor of ``mixed``: per-unit PT2E sensitivity, then
the most sensitive units stay FP32 (``set_module_name_qconfig(unit, None)``) within a top-1 budget."""

from __future__ import annotations

import torch

from compressflow import artifacts, data
from compressflow import evaluate as ev
from compressflow.quantize import mixed, pt2e
from compressflow.quantize.units import input_size_of, quantizable_units
from compressflow.steps.ptq_pt2e import save_pt2e


def mixed_pt2e(inputs, outputs, params, threads):
    torch.manual_seed(params["seed"])
    torch.set_num_threads(threads)
    model, recipe = artifacts.load_model(inputs["model"])
    calib, val = data.load_split(inputs["calib"]), data.load_split(inputs["val"])
    size, reduce_range = input_size_of(calib), params["reduce_range"]
    build = pt2e.builder(model, calib, params["calib_size"], size, reduce_range=reduce_range)
    units = quantizable_units(model, technique="mixed_pt2e")
    parent_logits = ev.predict(model, val)
    rows = mixed.sensitivity(model, build, val, units, parent_logits)
    prepared, info = mixed.mixed_precision(
        model, build, val, units, rows, params["max_accuracy_drop"], params["keep_first_last"], parent_logits=parent_logits
    )
    t = pt2e.transform(
        size,
        qat=False,
        reduce_range=reduce_range,
        fp32_layers=info["fp32_layers"],
        calib_size=params["calib_size"],
        budget_met=info["budget_met"],
    )
    save_pt2e(prepared, recipe, t, outputs, {"calib_images": params["calib_size"], "mixed": info, "sensitivity": rows})
