"""Rebuild a model's module tree from its recipe, so weights load without pickled code.

A recipe is ``{"arch": ..., "num_classes": ..., "arch_kwargs": {...}, "transforms": [...]}``;
each transform is ``{"kind": ..., ...}`` and is replayed by the module that made it.
"""

from __future__ import annotations

import importlib
from collections import OrderedDict

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


# Where training scripts usually keep the weights inside a checkpoint dict, tried in this order: the trained
# weights first (Lightning, torchvision's and timm's reference scripts), then an EMA copy when it is all there is.
CHECKPOINT_KEYS = ("state_dict", "model", "model_state_dict", "net", "module", "state_dict_ema", "model_ema", "ema")


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def read_state_dict(path, what: str, key: str | None = None, notes: list | None = None) -> dict:
    """A user's checkpoint, loaded weights-only: a state dict of tensors, or a training-script dict holding one.

    ``key`` (``checkpoint_key``, dotted for nested dicts) names where the weights are; without it a plain
    state dict is used as is, else the first of CHECKPOINT_KEYS that holds one (``notes`` gets a line saying
    which, and which other entries hold weights too). Key prefixes are left to :func:`align_keys`, which
    knows the model.
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
        found = [k for k in CHECKPOINT_KEYS if _is_state_dict(state.get(k))]
        if found:
            if notes is not None:
                others = (
                    f" (also holding weights: {', '.join(repr(k) for k in found[1:])}; set checkpoint_key to use one)" if found[1:] else ""
                )
                notes.append(f"{what}: took the weights under '{found[0]}'{others}")
            state = state[found[0]]
    if not _is_state_dict(state):
        keys = sorted(map(str, state))[:8] if isinstance(state, dict) else []
        raise CompressflowError(
            f"{what} '{path}' is not a state dict of tensors" + (f" (keys: {keys})" if keys else ""),
            "save it with torch.save(model.state_dict(), path), or set checkpoint_key to the entry that holds it",
        )
    return state


# torch.optim.swa_utils.AveragedModel's step counter (torchvision's EMA): not a weight of the model.
AVERAGED_MODEL_KEYS = ("n_averaged",)


def _rebuilt(state: dict, items, prefix: str = "") -> dict:
    """A new state dict of ``items`` that keeps ``state``'s ``_metadata`` (the module versions torch's loaders read:
    quantized modules load another layout without it), its module paths moved out from under ``prefix``."""
    out = OrderedDict(items)
    meta = getattr(state, "_metadata", None)
    if meta is not None:
        out._metadata = OrderedDict(
            (k[len(prefix) :] if prefix and k.startswith(prefix) else ("" if prefix and k == prefix[:-1] else k), v)
            for k, v in meta.items()
            if not prefix or k.startswith(prefix) or k == prefix[:-1]
        )
    return out


def _fits(keys: set, own: set) -> bool:
    """Every weight of the model is there (BatchNorm's num_batches_tracked may be missing: torch fills it) and nothing else."""
    return {k for k in own if not k.endswith("num_batches_tracked")} <= keys <= own


def _prefixes(keys, depth: int = 3) -> set[str]:
    out = set()
    for k in keys:
        parts = k.split(".")
        out.update(".".join(parts[:d]) + "." for d in range(1, min(depth, len(parts) - 1) + 1))
    return out


def align_keys(state: dict, own_keys, source: str, prefix: str | None = None, notes: list | None = None) -> dict:
    """The checkpoint's weights under the model's own key names.

    With ``prefix`` (``checkpoint_prefix``) the weights are the keys under it, prefix removed. Without it,
    keys that already fit are used as they are (a model whose own top-level child is called ``module``
    keeps it); else the one prefix whose keys fit the model exactly is taken, with a line in ``notes``:
    a wrapper's (``module.`` DDP/DataParallel/EMA, ``_orig_mod.`` torch.compile, ``model.`` Lightning), in
    any nesting, also when the checkpoint holds other modules' weights beside it (a Lightning loss or teacher).
    Two prefixes that both fit are ambiguous: the error names the knob and both values.
    """
    own = set(own_keys)
    if prefix is not None:
        sub = _rebuilt(state, ((k[len(prefix) :], v) for k, v in state.items() if k.startswith(prefix)), prefix)
        if not sub:
            raise CompressflowError(
                f"no key of '{source}' starts with checkpoint_prefix '{prefix}' (first keys: {sorted(state)[:3]})",
                "set checkpoint_prefix to the prefix its keys carry, or remove it",
            )
        return sub
    if _fits(set(state), own):
        return state
    state = _rebuilt(state, ((k, v) for k, v in state.items() if k not in AVERAGED_MODEL_KEYS or k in own))
    if _fits(set(state), own):
        return state
    fitting = []
    for p in sorted(_prefixes(state), key=lambda p: (p.count("."), p)):
        if fitting and p.count(".") > fitting[0].count("."):
            break
        if _fits({k[len(p) :] for k in state if k.startswith(p)}, own):
            fitting.append(p)
    if len(fitting) > 1:
        raise CompressflowError(
            f"the weights in '{source}' fit the model under several prefixes: {', '.join(repr(p) for p in fitting)}",
            f"set checkpoint_prefix to the one to load, e.g. checkpoint_prefix: '{fitting[0]}'",
        )
    if not fitting:
        return state  # load_state says what does not fit, with the prefix that comes closest
    p = fitting[0]
    sub = _rebuilt(state, ((k[len(p) :], v) for k, v in state.items() if k.startswith(p)), p)
    if notes is not None:
        left = len(state) - len(sub)
        notes.append(
            f"'{source}': its keys carry the prefix '{p}' (a wrapper's: DDP, EMA, torch.compile, Lightning); loaded the keys under it"
            + (f", leaving {left} other key(s)" if left else "")
            + f" (set checkpoint_prefix: '{p}' to say so, or another value to choose)"
        )
    return sub


def _closest_prefix(keys: set, own: set) -> tuple[str, int]:
    """The prefix (removed from the checkpoint's keys, or added to them as '+p') that matches most of the model's keys."""
    best = ("", len(keys & own))
    for p in _prefixes(keys):
        hits = len({k[len(p) :] for k in keys if k.startswith(p)} & own)
        best = max(best, (p, hits), key=lambda t: t[1])
    for p in _prefixes(own):
        hits = len({p + k for k in keys} & own)
        best = max(best, ("+" + p, hits), key=lambda t: t[1])
    return best


def load_state(
    model: torch.nn.Module,
    state_dict: dict,
    source: str,
    num_classes: int | None = None,
    prefix: str | None = None,
    notes: list | None = None,
) -> None:
    """load_state_dict with a one-line error naming the file and what does not match.

    With ``num_classes`` (the dataset's class count), a checkpoint whose only misfit is the classifier's
    output size is reported as a class-count mismatch.
    """
    own = model.state_dict()
    state_dict = align_keys(state_dict, own, source, prefix, notes)
    # BatchNorm's num_batches_tracked may be absent (older checkpoints): torch itself loads those with its default.
    absent = [k for k in own if k.endswith("num_batches_tracked") and k not in state_dict]
    if absent:
        state_dict = _rebuilt(state_dict, [*state_dict.items(), *((k, own[k]) for k in absent)])
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    if missing or unexpected:
        closest, hits = _closest_prefix(set(state_dict), set(own))
        if closest and hits >= len(own) // 2 and not closest.startswith("+"):
            fix = f"set checkpoint_prefix: '{closest}' in the model's config ({hits} of the model's {len(own)} keys sit under it), and check the architecture"
        elif closest.startswith("+"):
            fix = f"the model's keys carry a prefix '{closest[1:]}' the checkpoint's lack: load it into the inner module, or save the checkpoint from the same class"
        else:
            fix = (
                "point the config at a checkpoint of the same architecture (same arch/module and arch_kwargs), "
                "or set checkpoint_key if the weights sit under another entry"
            )
        raise CompressflowError(
            f"weights in '{source}' do not fit the architecture ({len(missing)} missing keys {missing[:3]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:3]})",
            fix,
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
