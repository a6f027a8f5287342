"""Quantization-aware training (technique ``qat``): fake-quant fine-tuning, then convert."""

from __future__ import annotations

import torch
from torch import nn
from torch.ao import quantization as tq

from compressflow import data, io, recipes, train
from compressflow.quantize.graph import (
    calibrate,
    convert,
    input_size_of,
    prepare,
)
from compressflow.quantize.qconfig import (
    qconfig_spec,
)
from compressflow.quantize.rebuild import transform


def fine_tune_qat(
    prepared: nn.Module,
    split: dict,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    freeze_observers_epoch: int | None,
    freeze_bn_epoch: int | None,
    warmup_images: int = 256,
) -> list[dict]:
    """Fake-quant fine-tuning; observers first see ``warmup_images`` training images so freezing at epoch 0 is meaningful."""
    calibrate(prepared, split, min(warmup_images, len(split["y"])), batch_size)

    def on_epoch_start(epoch, m):
        if freeze_observers_epoch is not None and epoch >= freeze_observers_epoch:
            m.apply(tq.disable_observer)
        if freeze_bn_epoch is not None and epoch >= freeze_bn_epoch:
            m.apply(torch.ao.nn.intrinsic.qat.freeze_bn_stats)

    return train.fit(prepared, split, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, desc="qat", on_epoch_start=on_epoch_start)


def step_train_qat(inputs, outputs, params, threads):
    train.seed_everything(params["seed"], threads)
    model, recipe = io.load_model(inputs["model"])
    split = data.load_split(inputs["train"])
    spec = qconfig_spec(params["backend"], "moving_average", "affine", params["per_channel"])
    size = input_size_of(split)
    prepared = prepare(model, spec, size, qat=True)
    freeze_obs, freeze_bn = params["freeze_observers_epoch"], params["freeze_bn_epoch"]
    history = fine_tune_qat(
        prepared,
        split,
        epochs=params["epochs"],
        lr=params["lr"],
        batch_size=params["batch_size"],
        seed=params["seed"],
        freeze_observers_epoch=freeze_obs,
        freeze_bn_epoch=freeze_bn,
    )
    q = convert(prepared.eval())
    t = transform("qat", spec, size, epochs=params["epochs"], freeze_observers_epoch=freeze_obs, freeze_bn_epoch=freeze_bn)
    io.save_model(q, recipes.with_transform(recipe, t), outputs["model"])
    io.write_json({"history": history}, outputs["history"])
