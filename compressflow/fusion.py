"""Conv+BN folding for inference (the ReLU stays a separate op in FP32; quantization fuses it)."""

from __future__ import annotations

import torch
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from compressflow import models
from compressflow.unsupported import Unsupported


def find_conv_bn_pairs(model: nn.Module) -> list[list[str]]:
    """(conv, bn) module names where the BN reads only that conv's output."""
    graph = fx.symbolic_trace(model).graph
    mods = dict(model.named_modules())
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(mods.get(node.target), nn.BatchNorm2d):
            continue
        src = node.args[0]
        if isinstance(src, fx.Node) and src.op == "call_module" and isinstance(mods.get(src.target), nn.Conv2d) and len(src.users) == 1:
            pairs.append([src.target, node.target])
    return pairs


def fold_bn(model: nn.Module) -> tuple[nn.Module, list[list[str]]]:
    """Fold every BN into the conv before it; BN modules become Identity. Keeps the class tree."""
    model = model.eval()
    pairs = find_conv_bn_pairs(model)
    if not pairs:
        norm_types = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase)
        norms = sorted({type(m).__name__ for m in model.modules() if isinstance(m, norm_types)})
        raise Unsupported(
            "fuse",
            f"{type(model).__name__} (no Conv2d followed by BatchNorm2d" + (f"; its norms are {', '.join(norms)}" if norms else "") + ")",
            "BN folding needs a BatchNorm2d right after a Conv2d",
            "drop the fuse variant for this model (restrict it with models:); quantization and the runtimes fold what they can themselves",
        )
    for conv_name, bn_name in pairs:
        fused = fuse_conv_bn_eval(model.get_submodule(conv_name), model.get_submodule(bn_name))
        models.set_submodule(model, conv_name, fused)
        models.set_submodule(model, bn_name, nn.Identity())
    return model, pairs


def rebuild(model: nn.Module, transform: dict) -> nn.Module:
    """Replay the structure of ``fold_bn`` (biased convs, Identity BNs) before loading weights."""
    for conv_name, bn_name in transform["pairs"]:
        conv = model.get_submodule(conv_name)
        if conv.bias is None:
            conv.bias = nn.Parameter(torch.zeros(conv.out_channels))
        models.set_submodule(model, bn_name, nn.Identity())
    return model


def max_output_diff(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return (a(x) - b(x)).abs().max().item()
