"""Rule ``qat``: quantization-aware training, then convert."""

from __future__ import annotations

from compressflow import artifacts, data, device, files, recipes, train
from compressflow.quantize import qat as qqat
from compressflow.quantize.graph import convert, prepare
from compressflow.quantize.qconfig import qconfig_spec
from compressflow.quantize.rebuild import transform
from compressflow.quantize.units import input_size_of


def qat(inputs, outputs, params, threads):
    train.seed_everything(params["seed"], threads)
    dev = device.use(params["device"])
    model, recipe = artifacts.load_model(inputs["model"])
    split = data.load_split(inputs["train"])
    spec = qconfig_spec(params["backend"], "moving_average", "affine", params["per_channel"])
    size = input_size_of(split)
    prepared = prepare(model, spec, size, qat=True).to(dev)  # fake-quant training on the device
    freeze_obs, freeze_bn = params["freeze_observers_epoch"], params["freeze_bn_epoch"]
    history = qqat.fine_tune_qat(
        prepared,
        split,
        epochs=params["epochs"],
        lr=params["lr"],
        batch_size=params["batch_size"],
        seed=params["seed"],
        freeze_observers_epoch=freeze_obs,
        freeze_bn_epoch=freeze_bn,
    )
    q = convert(prepared.cpu().eval())  # INT8 kernels are CPU kernels
    t = transform("qat", spec, size, epochs=params["epochs"], freeze_observers_epoch=freeze_obs, freeze_bn_epoch=freeze_bn)
    artifacts.save_model(q, recipes.with_transform(recipe, t), outputs["model"])
    files.write_json({"history": history}, outputs["history"])
