"""Quantization-aware training (technique ``qat``): fake-quant fine-tuning, then convert."""

from __future__ import annotations

import torch
from torch import nn
from torch.ao import quantization as tq

from compressflow import train
from compressflow.quantize.graph import (
    calibrate,
)

__all__ = ["fine_tune_qat"]


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
