"""Seeded, deterministic training loops shared by baseline training and every fine-tune."""

from __future__ import annotations

import contextlib
import math
import os
import random
import sys

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from compressflow import data, device
from compressflow.errors import CompressflowError


def seed_everything(seed: int, threads: int | None = None) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(True)
    else:
        # torch.use_deterministic_algorithms imports torch._inductor, and with it torch._dynamo, sympy and
        # triton (about 2 s of a job's start-up), only to set inductor's `deterministic` flag; this variable
        # sets that flag when inductor is imported later. Eager kernels read only the flag set below.
        os.environ["TORCHINDUCTOR_DETERMINISTIC"] = "1"
        torch._C._set_deterministic_algorithms(True)
    if threads:
        torch.set_num_threads(int(threads))


@contextlib.contextmanager
def without_dynamo_import():
    """Eager training without importing ``torch._dynamo``.

    ``torch.optim`` imports torch._dynamo (about 2 s of a job's start-up, with sympy and triton) in its
    first ``add_param_group`` and in every ``step``, only to call ``disable`` (keep a function out of a
    compiled graph) and ``graph_break``; outside ``torch.compile`` both do nothing. While the loop runs,
    a stand-in module answers those names as no-ops; it is removed afterwards, with the ``disable`` results
    torch cached on the functions, so a later ``import torch._dynamo`` loads the real module and behaves as
    if the stand-in never was. When torch._dynamo is already imported (PT2E jobs) nothing is replaced.
    """
    cached = []

    def disable(fn=None, recursive=True, **_):
        if fn is None:
            return lambda f: disable(f, recursive)
        cached.append(fn)
        return fn

    from compressflow import nodynamo

    names = {"disable": disable, "graph_break": lambda: None, "is_compiling": lambda: False}
    try:
        with nodynamo.stand_in(names):
            yield
    finally:
        for fn in cached:
            if getattr(fn, "__dynamo_disable", None) is fn:
                del fn.__dynamo_disable


#: Fewer optimizer steps than this train at a constant lr: OneCycleLR's 20 % warm-up needs at least two steps.
ONE_CYCLE_MIN_STEPS = 10


def cross_entropy(model, x, y):
    return nn.functional.cross_entropy(model(x), y)


def fit(
    model: nn.Module,
    train: dict,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    weight_decay: float = 5e-4,
    loss=cross_entropy,
    desc: str = "train",
    on_epoch_start=None,
    augment: dict | None = None,
    workers: int | None = None,
    amp=False,
) -> list[dict]:
    """SGD + Nesterov momentum with a cosine schedule; returns per-epoch mean loss.

    ``loss(model, x, y)`` lets distillation and QAT reuse the loop; ``on_epoch_start(epoch, model)``
    lets QAT freeze observers or BN statistics at a chosen epoch. Batches stream from the split
    (``data.loader``, ``workers`` processes) in a seeded order; ``augment`` (``train.augment``) is
    seeded per batch, so the same seed gives the same bytes with any number of workers.
    ``amp`` (``bf16``/``fp16``) autocasts the forward pass on the model's device, on CUDA only (:func:`device.amp_context`).
    """
    if epochs < 0:
        raise CompressflowError(f"epochs={epochs}", "use 0 or more epochs")
    if lr <= 0:
        raise CompressflowError(f"lr={lr}", "use a positive learning rate")
    if epochs == 0:
        return []
    with without_dynamo_import():
        return _fit(model, train, epochs, lr, batch_size, seed, weight_decay, loss, desc, on_epoch_start, augment, workers, amp)


def _fit(model, train, epochs, lr, batch_size, seed, weight_decay, loss, desc, on_epoch_start, augment, workers, amp):
    gen = torch.Generator().manual_seed(seed)
    n = len(train["y"])
    steps_per_epoch = math.ceil(n / batch_size)
    if n % batch_size == 1 and steps_per_epoch > 1:
        # A last batch of one image breaks BatchNorm in training mode: that image sits out this epoch (the order
        # is reshuffled every epoch, so another one sits out the next). Every other split size trains on all.
        steps_per_epoch -= 1
    seen = min(n, steps_per_epoch * batch_size)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    total_steps = epochs * steps_per_epoch
    if total_steps >= ONE_CYCLE_MIN_STEPS:
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total_steps, pct_start=0.2)
    else:  # OneCycleLR's warm-up would be shorter than a step (with 5 steps it divides by zero): a constant lr
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    dev = device.of(model)
    note = device.amp_note(amp, dev)
    if note:
        print(f"WARNING: {note}", file=sys.stderr)
    autocast, scaled = device.amp_context(amp, dev)
    scaler = torch.amp.GradScaler("cuda") if scaled else None
    history = []
    for epoch in range(epochs):
        if on_epoch_start is not None:
            on_epoch_start(epoch, model)
        model.train()
        order = torch.randperm(n, generator=gen)
        keys = [order[step * batch_size : (step + 1) * batch_size] for step in range(steps_per_epoch)]
        stream = data.loader(train, keys, workers=workers, augment_spec=augment, seed=seed * 1000 + epoch)
        total = 0.0
        bar = tqdm(stream, total=steps_per_epoch, desc=f"{desc} {epoch + 1}/{epochs}", file=sys.stderr, mininterval=5)
        for x, y in bar:
            x, y = x.to(dev), y.to(dev)
            opt.zero_grad(set_to_none=True)
            with autocast:
                value = loss(model, x, y)
            if not torch.isfinite(value):
                raise CompressflowError(f"{desc}: loss became {value.item()} in epoch {epoch + 1}", "lower the learning rate")
            if scaler is None:
                value.backward()
                opt.step()
            else:
                scaler.scale(value).backward()
                scaler.step(opt)
                scaler.update()
            sched.step()
            total += value.item() * len(y)
        history.append({"epoch": epoch + 1, "loss": total / seen})
        print(f"{desc}: epoch {epoch + 1}/{epochs} loss {total / seen:.4f}", file=sys.stderr)
    model.eval()
    return history
