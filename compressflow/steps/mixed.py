"""Rule ``mixed``: mixed precision (torch.ao FX): the most sensitive units stay FP32 within a top-1 budget."""

from __future__ import annotations

import torch

from compressflow import artifacts, data, files, recipes
from compressflow.quantize import mixed as qmixed
from compressflow.quantize.graph import builder, check_calib_size
from compressflow.quantize.qconfig import qconfig_spec
from compressflow.quantize.rebuild import transform
from compressflow.quantize.units import STATIC_LAYERS, input_size_of, quantizable_units


def mixed(inputs, outputs, params, threads):
    torch.set_num_threads(threads)
    model, recipe = artifacts.load_model(inputs["model"])
    calib, val = data.load_split(inputs["calib"]), data.load_split(inputs["val"])
    spec = qconfig_spec(params["backend"], params["observer"], "affine", params["per_channel"])
    calib_size = check_calib_size(calib, params["calib_size"] if params.get("calib_size") else len(calib["y"]))
    q, info = qmixed.mixed_precision(
        model,
        builder(model, spec, calib, calib_size),
        val,
        quantizable_units(model),
        qmixed.read_sensitivity(inputs["sensitivity"]),
        params["max_accuracy_drop"],
        params["keep_first_last"],
    )
    info["float_conv_linear"] = [n for n, m in q.named_modules() if isinstance(m, STATIC_LAYERS)]
    t = transform(
        "mixed", spec, input_size_of(calib), fp32_layers=info["fp32_layers"], budget_met=info["budget_met"], calib_size=calib_size
    )
    artifacts.save_model(q, recipes.with_transform(recipe, t), outputs["model"])
    files.write_json(info, outputs["report"])
