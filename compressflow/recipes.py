"""Rebuild a model's module tree from its recipe, so weights load without pickled code.

A recipe is ``{"arch": ..., "num_classes": ..., "arch_kwargs": {...}, "transforms": [...]}``;
each transform is ``{"kind": ..., ...}`` and is replayed by the module that made it.
"""

from __future__ import annotations

import importlib

import torch

from compressflow import files
from compressflow.errors import CompressflowError

# kind -> "module:function"; the function takes (model, transform) and returns the model.
REBUILDERS = {
    "fold_bn": "compressflow.fusion:rebuild",
    "prune_channels": "compressflow.prune:rebuild",
    "quantize": "compressflow.quantize.rebuild:rebuild",
    "pt2e": "compressflow.quantize.pt2e:rebuild",
}
# kind -> "module:function" run after the state dict is loaded (PT2E converts once its observers hold their values).
FINISHERS = {
    "pt2e": "compressflow.quantize.pt2e:finish",
}


def base_recipe(arch: str, num_classes: int, arch_kwargs: dict | None = None) -> dict:
    return {"arch": arch, "num_classes": int(num_classes), "arch_kwargs": dict(arch_kwargs or {}), "transforms": []}


def with_transform(recipe: dict, transform: dict) -> dict:
    """A new recipe with ``transform`` appended (the parent's recipe stays untouched)."""
    out = dict(recipe)
    out["transforms"] = list(recipe.get("transforms", [])) + [transform]
    return out


def rebuild(recipe: dict) -> torch.nn.Module:
    from compressflow import models

    model = models.build(recipe["arch"], recipe["num_classes"], **recipe.get("arch_kwargs", {}))
    model.eval()
    for transform in recipe.get("transforms", []):
        kind = transform.get("kind")
        if kind not in REBUILDERS:
            raise CompressflowError(
                f"model recipe has unknown transform '{kind}'", "rebuild the artifact with this version of compressflow"
            )
        mod_name, fn_name = REBUILDERS[kind].split(":")
        model = getattr(importlib.import_module(mod_name), fn_name)(model, transform)
    return model


def is_size_bound(recipe: dict) -> bool:
    """Whether the rebuilt model only takes the input size its recipe records (a PT2E exported graph)."""
    transforms = recipe.get("transforms", [])
    return bool(transforms) and transforms[-1].get("kind") in FINISHERS


def finish(model: torch.nn.Module, recipe: dict) -> torch.nn.Module:
    """The model after its weights are in: the last transform's finisher, if it has one."""
    transforms = recipe.get("transforms", [])
    if transforms and transforms[-1].get("kind") in FINISHERS:
        mod_name, fn_name = FINISHERS[transforms[-1]["kind"]].split(":")
        model = getattr(importlib.import_module(mod_name), fn_name)(model, transforms[-1])
    return model


def read_state_dict(path, what: str) -> dict:
    """A user's checkpoint: a state dict of tensors (or {"state_dict": ...}), loaded weights-only."""

    state = files.load_tensors(path, what)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CompressflowError(f"{what} '{path}' is not a state dict of tensors", "save it with torch.save(model.state_dict(), path)")
    return strip_wrapper_prefixes(state)


# Keys of a model saved while wrapped: DistributedDataParallel/DataParallel ("module.") or torch.compile ("_orig_mod.").
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def strip_wrapper_prefixes(state: dict) -> dict:
    """The state dict of the bare model, whichever wrappers it was saved through."""
    changed = True
    while changed and state:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                changed = True
    return state


def load_state(model: torch.nn.Module, state_dict: dict, source: str) -> None:
    """load_state_dict with a one-line error naming what does not match."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    if missing or unexpected:
        raise CompressflowError(
            f"weights in '{source}' do not fit the architecture (missing {missing[:3]}, unexpected {unexpected[:3]})",
            "point the config at a checkpoint of the same architecture",
        )
    for key, value in state_dict.items():
        target = own[key]
        if isinstance(value, torch.Tensor) and isinstance(target, torch.Tensor) and value.shape != target.shape:
            raise CompressflowError(
                f"weights in '{source}' do not fit the architecture: '{key}' has shape {tuple(value.shape)}, expected {tuple(target.shape)}",
                "check the architecture and the number of classes in the config",
            )
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
            raise CompressflowError(
                f"weights in '{source}' contain NaN or Inf in '{key}'", "use a checkpoint saved from a healthy training run"
            )
    model.load_state_dict(state_dict)
