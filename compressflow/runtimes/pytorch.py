"""Eager PyTorch as a runtime: a timed callable and the precision a saved artifact runs in."""

from __future__ import annotations

import torch

from compressflow import artifacts, files

__all__ = ["runner", "precision", "api", "reference"]


def runner(model: torch.nn.Module, threads: int):
    """``model`` in eval mode as a callable without autograd, on ``threads`` intra-op threads."""
    torch.set_num_threads(threads)
    model.eval()

    @torch.no_grad()
    def run(x):
        return model(x)

    return run


def precision(recipe: dict) -> str:
    """fp32, int8 (static/QAT), int8-dynamic (weights only, activations float) or int8+fp32 (mixed precision)."""
    quant = [t for t in recipe.get("transforms", []) if t.get("kind") in ("quantize", "pt2e")]
    if not quant:
        return "fp32"
    if quant[-1].get("mode") == "dynamic":
        return "int8-dynamic"
    return "int8+fp32" if quant[-1].get("fp32_layers") else "int8"


def api(recipe: dict) -> str | None:
    """Which quantization API built an INT8 artifact: "pt2e" (torchao), "torch.ao-fx" or "torch.ao-eager" (dynamic); None if float."""
    quant = [t for t in recipe.get("transforms", []) if t.get("kind") in ("quantize", "pt2e")]
    if not quant:
        return None
    if quant[-1]["kind"] == "pt2e":
        return "pt2e"
    return "torch.ao-eager" if quant[-1].get("mode") == "dynamic" else "torch.ao-fx"


def reference(inputs: dict) -> tuple[torch.nn.Module, torch.Tensor]:
    """The PyTorch artifact a runtime row is compared with (``torch_model``) and its test logits (``torch_logits``)."""
    model, _ = artifacts.load_model(inputs["torch_model"])
    return model, files.load_tensors(inputs["torch_logits"], "PyTorch test logits")
