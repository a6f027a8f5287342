"""Architectures the workflow builds, without pretrained weights (no download).

``arch`` is any torchvision classification model by name (``torchvision.models.get_model``) or
``lstm`` (our own); ``module: "package.module:factory"`` with ``code_path`` builds the user's own
``nn.Module`` as ``factory(num_classes=..., **arch_kwargs)``.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from compressflow.errors import CompressflowError
from compressflow.modelspec import add_code_path, check_arch, import_torchvision, load_factory, user_frame

__all__ = ["build", "count_params", "set_submodule", "add_code_path", "check_arch", "load_factory", "RowLSTM"]


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


def _lstm(num_classes: int, hidden: int = 64, **_):
    return RowLSTM(num_classes, hidden=hidden)


OWN_ARCHS = {"lstm": _lstm}
ARCHS = OWN_ARCHS  # the same dict (tests register toy architectures here)


def build(arch: str, num_classes: int, *, module: str | None = None, code_path: str | None = None, **kwargs) -> nn.Module:
    """A freshly initialised model; ``kwargs`` are architecture options (``arch_kwargs``, e.g. width_mult)."""
    if num_classes < 2:
        raise CompressflowError(f"num_classes={num_classes} for '{module or arch}'", "a classifier needs at least 2 classes")
    if module:
        fn, what = load_factory(module, code_path), f"module '{module}'"
    elif arch in OWN_ARCHS:
        fn, what = OWN_ARCHS[arch], f"'{arch}'"
    else:
        check_arch(arch, "model")
        tvm = import_torchvision().models

        def fn(num_classes, **kw):
            return tvm.get_model(arch, weights=None, num_classes=num_classes, **kw)

        what = f"torchvision '{arch}'"
    if module:
        try:
            inspect.signature(fn).bind(num_classes=num_classes, **kwargs)
        except TypeError as exc:
            given = f"arch_kwargs {sorted(kwargs)}" if kwargs else "no arch_kwargs"
            raise CompressflowError(
                f"{what} cannot be called as factory(num_classes=..., **arch_kwargs) with {given} ({exc})",
                "make the factory take num_classes (and the arch_kwargs you give it)",
            ) from exc
        except ValueError:
            pass  # no signature to read (a builtin): the call below says what is wrong
        try:
            model = fn(num_classes=num_classes, **kwargs)
        except Exception as exc:
            raise CompressflowError(
                f"{what} raised {type(exc).__name__} inside the factory: {exc} ({user_frame(exc)})",
                f"fix the factory; reproduce with: from {module.partition(':')[0]} import {module.partition(':')[2]}; "
                f"{module.partition(':')[2]}(num_classes={num_classes})",
            ) from exc
    else:
        try:
            model = fn(num_classes=num_classes, **kwargs)
        except TypeError as exc:
            raise CompressflowError(
                f"{what} does not take arch_kwargs {sorted(kwargs)} ({exc})",
                "fix or drop arch_kwargs (they are passed to the model's constructor)",
            ) from exc
    if not isinstance(model, nn.Module):
        raise CompressflowError(f"{what} returned {type(model).__name__}, not a torch.nn.Module", "make the factory return the model")
    return model


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
