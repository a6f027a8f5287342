"""Rule ``ptq_calibrate``: static PTQ, first half: insert observers and calibrate on the calib split."""

from __future__ import annotations

import torch

from compressflow import artifacts, data, device, files, recipes
from compressflow.quantize import static
from compressflow.quantize.graph import calibrate, check_calib_size, prepare
from compressflow.quantize.qconfig import qconfig_spec
from compressflow.quantize.rebuild import transform
from compressflow.quantize.units import input_size_of


def ptq_calibrate(inputs, outputs, params, threads):
    torch.set_num_threads(threads)
    dev = device.use(params["device"])
    model, recipe = artifacts.load_model(inputs["model"])
    calib = data.load_split(inputs["calib"])
    spec = qconfig_spec(params["backend"], params["observer"], params["activation"], params["per_channel"], params["percentile"])
    size = input_size_of(calib)
    check_calib_size(calib, params["calib_size"])
    prepared = prepare(model, spec, size).to(dev)
    n = calibrate(prepared, calib, params["calib_size"])
    prepared.cpu()  # ptq converts on the CPU
    table = static.observer_table(prepared)
    t = transform("ptq", spec, size, stage="prepared", calib_size=n)
    artifacts.save_model(prepared, recipes.with_transform(recipe, t), outputs["calibrated"])
    files.write_json({"qconfig": spec, "calib_images": n, "input_size": size, "observers": table}, outputs["calibration"])
