"""Static post-training quantization (technique ``ptq``): observers, bias correction and the calibrate/convert steps."""

from __future__ import annotations

import torch
from torch import fx, nn
from torch.ao import quantization as tq
from torch.ao.nn import quantized as nnq

from compressflow import data
from compressflow.quantize.error import float_outputs
from compressflow.quantize.graph import (
    check_calib_size,
)

__all__ = ["observer_table", "bias_correct"]


def observer_table(prepared: fx.GraphModule) -> list[dict]:
    """Per observed tensor: which op it follows, observed min/max and the resulting scale/zero point."""
    mods = dict(prepared.named_modules())
    rows = []
    for node in prepared.graph.nodes:
        obs = mods.get(node.target) if node.op == "call_module" else None
        if not isinstance(obs, tq.ObserverBase):
            continue
        src = node.args[0]
        row = {
            "observer": node.target,
            "observes": src.target if isinstance(src, fx.Node) and src.op == "call_module" else str(src),
            "kind": type(obs).__name__,
        }
        if hasattr(obs, "min_val") and obs.min_val.numel() == 1 and torch.isfinite(obs.min_val):
            scale, zp = obs.calculate_qparams()
            scale, zp = float(scale.reshape(-1)[0]), int(zp.reshape(-1)[0])
            row.update(
                min=obs.min_val.item(),
                max=obs.max_val.item(),
                scale=scale,
                zero_point=zp,
                range_min=(obs.quant_min - zp) * scale,
                range_max=(obs.quant_max - zp) * scale,
            )
        rows.append(row)
    return rows


@torch.no_grad()
def bias_correct(quantized: nn.Module, reference: nn.Module, split: dict, calib_size: int, batch_size: int = 64) -> list[dict]:
    """Empirical bias correction: per output channel, subtract the mean output error vs float from the bias.

    Layers are corrected in execution order, so each correction sees the already-corrected upstream.
    ``reference`` is the prepared (fused, float) model: same module names, float arithmetic.
    """
    calib_size = check_calib_size(split, calib_size)
    names = [n for n, m in quantized.named_modules() if isinstance(m, (nnq.Conv2d, nnq.Conv1d, nnq.Linear)) and m.bias() is not None]
    done = []
    for name in names:
        qmod = quantized.get_submodule(name)
        total, count = None, 0
        for x, _ in data.batches(split, batch_size, limit=calib_size):
            q, f = float_outputs(quantized, [name], x)[name], float_outputs(reference, [name], x)[name]
            dims = [d for d in range(q.dim()) if d != 1]
            err = (q - f).sum(dim=dims)
            total = err if total is None else total + err
            count += q.numel() // q.shape[1]
        shift = total / count
        qmod.set_weight_bias(qmod.weight(), qmod.bias() - shift)
        done.append({"layer": name, "mean_abs_shift": shift.abs().mean().item()})
    return done
