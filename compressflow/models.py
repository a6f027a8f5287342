"""Architectures the workflow knows, built without pretrained weights (no download)."""

from __future__ import annotations

import torch
from torch import nn
from torchvision import models as tvm

from compressflow.errors import CompressflowError


class RowLSTM(nn.Module):
    """Reads an image as a sequence of rows (one channel): a small real LSTM classifier."""

    def __init__(self, num_classes: int, input_size: int = 8, hidden: int = 64):
        super().__init__()
        self.input_size = input_size
        self.lstm = nn.LSTM(input_size, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x):
        seq = nn.functional.adaptive_avg_pool2d(x[:, :1], (self.input_size, self.input_size))[:, 0]
        out, _ = self.lstm(seq)
        return self.fc(out[:, -1])


def _resnet18(num_classes: int, **_):
    return tvm.resnet18(weights=None, num_classes=num_classes)


def _mobilenet_v2(num_classes: int, width_mult: float = 1.0, **_):
    return tvm.mobilenet_v2(weights=None, num_classes=num_classes, width_mult=width_mult)


def _lstm(num_classes: int, hidden: int = 64, **_):
    return RowLSTM(num_classes, hidden=hidden)


ARCHS = {"resnet18": _resnet18, "mobilenet_v2": _mobilenet_v2, "lstm": _lstm}


def build(arch: str, num_classes: int, **kwargs) -> nn.Module:
    """A freshly initialised model; ``kwargs`` are architecture options (e.g. width_mult)."""
    if arch not in ARCHS:
        raise CompressflowError(f"unknown model architecture '{arch}'", f"use one of: {', '.join(sorted(ARCHS))}")
    if num_classes < 2:
        raise CompressflowError(f"num_classes={num_classes} for '{arch}'", "a classifier needs at least 2 classes")
    return ARCHS[arch](num_classes, **kwargs)


def count_params(model: nn.Module) -> int:
    """Weights a deployed model stores, float parameters and quantized (packed) weights alike."""
    total = sum(p.numel() for p in model.parameters())
    for module in model.modules():
        packed = getattr(module, "_weight_bias", None)
        groups = packed() if callable(packed) else None
        if isinstance(groups, dict):  # dynamic INT8 LSTM/GRU: {"weight": {...}, "bias": {...}} of packed tensors
            total += sum(t.numel() for group in groups.values() for t in group.values())
            continue
        weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
        if callable(weight):  # quantized modules expose weight() / bias() instead of parameters
            total += weight().numel()
            b = bias() if callable(bias) else None
            total += b.numel() if isinstance(b, torch.Tensor) else 0
    return total


def set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    """Replace the submodule at dotted ``name`` (``layer1.0.bn1``) with ``module``."""
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)
