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


def base_recipe(
    arch: str, num_classes: int, arch_kwargs: dict | None = None, module: str | None = None, code_path: str | None = None
) -> dict:
    """The recipe of a fresh model; a user module (``module`` + ``code_path``) is recorded so later jobs rebuild it."""
    recipe = {"arch": arch, "num_classes": int(num_classes), "arch_kwargs": dict(arch_kwargs or {}), "transforms": []}
    if module:
        recipe.update(module=module, code_path=code_path)
    return recipe


def model_source(spec: dict) -> dict:
    """``module``/``code_path`` of a config model spec (empty for a named architecture): keyword args of models.build."""
    return {"module": spec["module"], "code_path": spec.get("code_path")} if spec.get("module") else {}


def arch_name(spec: dict) -> str:
    """The architecture name of a config model spec: ``arch``, or the module it is built by."""
    return spec.get("arch") or spec["module"]


def with_transform(recipe: dict, transform: dict) -> dict:
    """A new recipe with ``transform`` appended (the parent's recipe stays untouched)."""
    out = dict(recipe)
    out["transforms"] = list(recipe.get("transforms", [])) + [transform]
    return out


def rebuild(recipe: dict) -> torch.nn.Module:
    from compressflow import models

    model = models.build(recipe["arch"], recipe["num_classes"], **model_source(recipe), **recipe.get("arch_kwargs", {}))
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


# Where training scripts usually keep the weights inside a checkpoint dict, tried in this order.
CHECKPOINT_KEYS = ("state_dict", "model", "model_state_dict", "net", "module")


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def read_state_dict(path, what: str, key: str | None = None) -> dict:
    """A user's checkpoint, loaded weights-only: a state dict of tensors, or a training-script dict holding one.

    ``key`` (``checkpoint_key``, dotted for nested dicts) names where the weights are; without it a plain
    state dict is used as is, else the first of CHECKPOINT_KEYS that holds one. DDP/DataParallel
    (``module.``) and torch.compile (``_orig_mod.``) prefixes are stripped.
    """
    state = files.load_tensors(path, what)
    if key:
        for part in key.split("."):
            if not isinstance(state, dict) or part not in state:
                keys = sorted(state)[:8] if isinstance(state, dict) else []
                raise CompressflowError(
                    f"{what} '{path}' has no entry '{part}' (checkpoint_key '{key}'; top-level keys: {keys})",
                    "set checkpoint_key to the entry that holds the model's state dict",
                )
            state = state[part]
    elif isinstance(state, dict) and not _is_state_dict(state):
        state = next((state[k] for k in CHECKPOINT_KEYS if _is_state_dict(state.get(k))), state)
    if not _is_state_dict(state):
        keys = sorted(map(str, state))[:8] if isinstance(state, dict) else []
        raise CompressflowError(
            f"{what} '{path}' is not a state dict of tensors" + (f" (keys: {keys})" if keys else ""),
            "save it with torch.save(model.state_dict(), path), or set checkpoint_key to the entry that holds it",
        )
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


def load_state(model: torch.nn.Module, state_dict: dict, source: str, num_classes: int | None = None) -> None:
    """load_state_dict with a one-line error naming the file and what does not match.

    With ``num_classes`` (the dataset's class count), a checkpoint whose only misfit is the classifier's
    output size is reported as a class-count mismatch.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    if missing or unexpected:
        raise CompressflowError(
            f"weights in '{source}' do not fit the architecture ({len(missing)} missing keys {missing[:3]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:3]})",
            "point the config at a checkpoint of the same architecture (same arch/module and arch_kwargs), "
            "or set checkpoint_key if the weights sit under another entry",
        )
    wrong = [
        (k, tuple(v.shape), tuple(own[k].shape))
        for k, v in state_dict.items()
        if isinstance(v, torch.Tensor) and isinstance(own[k], torch.Tensor) and v.shape != own[k].shape
    ]
    if wrong and num_classes is not None and all(t[:1] == (num_classes,) and s[1:] == t[1:] and s[:1] for _, s, t in wrong):
        key, shape, _ = wrong[0]
        raise CompressflowError(
            f"checkpoint '{source}' was trained for {shape[0]} classes ('{key}' has shape {shape}) but the dataset has {num_classes}",
            "use the dataset the checkpoint was trained on (same class folders), or a checkpoint with a classifier for these classes",
        )
    if wrong:
        key, shape, expected = wrong[0]
        raise CompressflowError(
            f"weights in '{source}' do not fit the architecture: '{key}' has shape {shape}, expected {expected}"
            + (f" (and {len(wrong) - 1} more mismatched keys)" if len(wrong) > 1 else ""),
            "check the architecture, its arch_kwargs and the number of classes in the config",
        )
    for key, value in state_dict.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
            raise CompressflowError(
                f"weights in '{source}' contain NaN or Inf in '{key}'", "use a checkpoint saved from a healthy training run"
            )
    model.load_state_dict(state_dict)
