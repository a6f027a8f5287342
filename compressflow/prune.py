"""Pruning: unstructured L1 magnitude (sparse weights, same shapes) and structured channel pruning.

Channel pruning uses Torch-Pruning's dependency graph, so removing a conv's output channels
also removes the matching BN features and the next layers' input channels (residual adds and
depthwise groups stay consistent). The pruned shapes are recorded in the model recipe as a
``prune_channels`` transform and :func:`rebuild` replays them, so the artifact reloads with
``weights_only=True`` (``tp.state_dict`` files do not).
"""

from __future__ import annotations

import gzip
import io as _bytesio
import warnings

import torch
from torch import nn
from torch.nn.utils import prune as tprune

from compressflow import evaluate as ev
from compressflow import measure, models
from compressflow.errors import CompressflowError
from compressflow.unsupported import Unsupported

L1_NOTE = (
    "unstructured sparsity: tensors keep their dense shapes and dense CPU kernels do the same work, "
    "so latency does not improve; only sparse/compressed storage can shrink"
)
IMPORTANCE_P = {"l1": 1, "l2": 2}


# ---------------------------------------------------------------- unstructured L1


def prunable_weights(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def l1_unstructured(model: nn.Module, amount: float) -> list[tuple[str, nn.Module]]:
    """Global magnitude pruning of every Conv2d/Linear weight; masks stay attached (call :func:`make_permanent`)."""
    if not 0 < amount < 1:
        raise CompressflowError(f"prune amount={amount}", "use a fraction strictly between 0 and 1, e.g. 0.5")
    layers = prunable_weights(model)
    if not layers:
        raise CompressflowError("the model has no Conv2d or Linear weights to prune", "drop the prune_l1 variant for this model")
    tprune.global_unstructured([(m, "weight") for _, m in layers], pruning_method=tprune.L1Unstructured, amount=amount)
    return layers


def make_permanent(layers) -> None:
    for _, m in layers:
        if tprune.is_pruned(m):
            tprune.remove(m, "weight")


def sparsity(model: nn.Module) -> dict:
    """True zero fractions per Conv2d/Linear weight, over those weights, and over every parameter."""
    per_layer, zeros, total = {}, 0, 0
    for name, m in prunable_weights(model):
        w = m.weight.detach()
        z = int((w == 0).sum())
        per_layer[name] = {"zeros": z, "numel": w.numel(), "sparsity": z / w.numel()}
        zeros, total = zeros + z, total + w.numel()
    all_zero = sum(int((p.detach() == 0).sum()) for p in model.parameters())
    all_numel = sum(p.numel() for p in model.parameters())
    return {
        "per_layer": per_layer,
        "prunable_zeros": zeros,
        "prunable_numel": total,
        "sparsity_prunable": zeros / total if total else 0.0,
        "sparsity_all_params": all_zero / all_numel if all_numel else 0.0,
    }


def _saved_bytes(obj) -> bytes:
    buf = _bytesio.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def storage_sizes(model: nn.Module) -> dict:
    """Bytes of the state dict saved dense, with pruned weights as sparse COO / CSR, and gzip-compressed dense.

    All are measured with torch.save into memory; only the bitmask figure is computed (nnz fp32 values + 1 bit per weight).
    """
    state = model.state_dict()
    names = {f"{n}.weight" for n, _ in prunable_weights(model)}
    dense = _saved_bytes(state)
    coo = _saved_bytes({k: (v.to_sparse() if k in names else v) for k, v in state.items()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        csr = _saved_bytes({k: (v.reshape(v.shape[0], -1).to_sparse_csr() if k in names else v) for k, v in state.items()})
    nnz = sum(int((state[k] != 0).sum()) for k in names)
    numel = sum(state[k].numel() for k in names)
    return {
        "dense_state_dict_bytes": len(dense),
        "sparse_coo_state_dict_bytes": len(coo),
        "sparse_csr_state_dict_bytes": len(csr),
        "gzip6_dense_state_dict_bytes": len(gzip.compress(dense, compresslevel=6, mtime=0)),
        "pruned_weights_nnz": nnz,
        "pruned_weights_numel": numel,
        "bitmask_plus_fp32_values_bytes_estimate": nnz * 4 + (numel + 7) // 8,
    }


# ---------------------------------------------------------------- structured channels


def classifier_name(model: nn.Module) -> str:
    """The last Linear module: its outputs are the classes, so it is never pruned."""
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise CompressflowError("the model has no Linear classifier", "channel pruning supports CNN classifiers (resnet18, mobilenet_v2)")
    return linears[-1]


def resolve_ignored(model: nn.Module, names) -> list[str]:
    mods = dict(model.named_modules())
    for name in names or []:
        if name not in mods or name == "":
            close = [n for n in mods if n and (n.startswith(name.split(".")[0]) or name in n)][:5]
            raise CompressflowError(
                f"ignored_layers names '{name}', which is not a module of this model",
                f"use module names such as {', '.join(close or [n for n in mods if n][:5])}",
            )
    return sorted(set(names or []) | {classifier_name(model)})


# Modules whose own (direct) parameters are used elementwise only, so a parameter of the recorded shape
# rebuilds them exactly (torchvision ConvNeXt's per-channel layer_scale).
ELEMENTWISE_PARAM_MODULES = ("CNBlock",)


def record_shapes(model: nn.Module) -> dict:
    """Plain-data shapes of every Conv2d/BatchNorm2d/Linear/LayerNorm (and elementwise block parameters), enough to rebuild the pruned tree."""
    shapes = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            shapes[name] = {"type": "Conv2d", "in": m.in_channels, "out": m.out_channels, "groups": m.groups, "bias": m.bias is not None}
        elif isinstance(m, nn.BatchNorm2d):
            shapes[name] = {"type": "BatchNorm2d", "num_features": m.num_features}
        elif isinstance(m, nn.Linear):
            shapes[name] = {"type": "Linear", "in": m.in_features, "out": m.out_features, "bias": m.bias is not None}
        elif isinstance(m, nn.LayerNorm):
            shapes[name] = {"type": type(m).__name__, "layer_norm": list(m.normalized_shape), "affine": m.elementwise_affine}
        elif type(m).__name__ in ELEMENTWISE_PARAM_MODULES:
            shapes[name] = {"type": type(m).__name__, "params": {k: list(p.shape) for k, p in m.named_parameters(recurse=False)}}
    return shapes


def rebuild(model: nn.Module, transform: dict) -> nn.Module:
    """Recreate each recorded module with its pruned shape (weights are loaded afterwards)."""
    mods = dict(model.named_modules())
    for name, s in transform["shapes"].items():
        old = mods.get(name)
        if old is None or type(old).__name__ != s["type"]:
            raise CompressflowError(
                f"prune_channels recipe names module '{name}' ({s['type']}) but the model has {type(old).__name__ if old is not None else 'none'}",
                "rebuild the artifact from its parent with this version of compressflow",
            )
        if s["type"] == "Conv2d":
            new = nn.Conv2d(
                s["in"],
                s["out"],
                old.kernel_size,
                stride=old.stride,
                padding=old.padding,
                dilation=old.dilation,
                groups=s["groups"],
                bias=s["bias"],
                padding_mode=old.padding_mode,
            )
        elif "params" in s:  # elementwise block parameters: a tensor of the recorded shape, loaded afterwards
            for pname, shape in s["params"].items():
                setattr(old, pname, nn.Parameter(torch.empty(shape)))
            continue
        elif "layer_norm" in s:
            new = type(old)(s["layer_norm"], eps=old.eps, elementwise_affine=s["affine"], bias=old.bias is not None)
        elif s["type"] == "BatchNorm2d":
            new = nn.BatchNorm2d(
                s["num_features"], eps=old.eps, momentum=old.momentum, affine=old.affine, track_running_stats=old.track_running_stats
            )
        else:
            new = nn.Linear(s["in"], s["out"], bias=s["bias"])
        models.set_submodule(model, name, new)
    return model.eval()


def count_macs_params(model: nn.Module, size: int) -> dict:
    """MACs per image at ``size`` px and parameters, counted as the benchmark counts them (:func:`measure.count_macs`)."""
    return {"macs": measure.count_macs(model, torch.zeros(1, 3, size, size)), "params": models.count_params(model)}


def prune_channels(
    model: nn.Module,
    *,
    ratio: float,
    input_size: int,
    ignored_layers=(),
    iterative_steps: int = 1,
    importance: str = "l2",
    between_steps=None,
) -> nn.Module:
    """Remove ``ratio`` of the channels of every prunable group (in ``iterative_steps`` equal steps).

    ``between_steps(step, model)`` runs after each step but the last (e.g. a short fine-tune).
    """
    import torch_pruning as tp

    if not 0 < ratio < 1:
        raise CompressflowError(f"prune_channels ratio={ratio}", "use a fraction strictly between 0 and 1, e.g. 0.5")
    if int(iterative_steps) < 1:
        raise CompressflowError(f"iterative_steps={iterative_steps}", "use 1 or more steps")
    if importance not in IMPORTANCE_P:
        raise CompressflowError(f"importance '{importance}'", f"use one of: {', '.join(IMPORTANCE_P)}")
    ignored = resolve_ignored(model, ignored_layers)
    model.eval()
    before = _unrecorded_shapes(model)
    example = torch.zeros(1, 3, input_size, input_size)
    # The dependency graph is traced through autograd: it must be built with gradients on.
    with torch.enable_grad():
        pruner = tp.pruner.BasePruner(
            model,
            example,
            importance=tp.importance.GroupMagnitudeImportance(p=IMPORTANCE_P[importance]),
            pruning_ratio=ratio,
            iterative_steps=int(iterative_steps),
            ignored_layers=[model.get_submodule(n) for n in ignored],
        )
        for step in range(int(iterative_steps)):
            pruner.step()
            check_recordable(model, before)
            if between_steps is not None and step < int(iterative_steps) - 1:
                between_steps(step, model)
    return model.eval()


RECORDED = (nn.Conv2d, nn.BatchNorm2d, nn.Linear, nn.LayerNorm)


def _unrecorded_shapes(model: nn.Module) -> dict:
    """Shapes of the parameters and buffers the recipe cannot record (those of modules other than Conv2d/BatchNorm2d/Linear)."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, RECORDED) or type(m).__name__ in ELEMENTWISE_PARAM_MODULES:
            continue
        for pname, t in [*m.named_parameters(recurse=False), *m.named_buffers(recurse=False)]:
            if t is not None:
                out[f"{name}.{pname}" if name else pname] = (type(m).__name__, tuple(t.shape))
    return out


def check_recordable(model: nn.Module, before: dict) -> None:
    """Torch-Pruning resized a layer the recipe cannot rebuild: a known limit of this architecture, not a bug."""
    after = _unrecorded_shapes(model)
    changed = [(k, before[k][0]) for k in before if k in after and after[k][1] != before[k][1]]
    if changed:
        names = ", ".join(f"'{k}' ({t})" for k, t in changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        raise Unsupported(
            "prune_channels",
            names,
            "Torch-Pruning resized it, and the model recipe can only rebuild pruned Conv2d/BatchNorm2d/Linear/LayerNorm layers",
            "add those modules (or their blocks) to ignored_layers, or use prune_l1 / the runtimes' INT8 for this model",
        )


def split_epochs(total: int, steps: int) -> list[int]:
    base = [total // steps] * steps
    base[-1] += total - sum(base)
    return base


@torch.no_grad()
def top1_of(model: nn.Module, split: dict) -> float:
    return ev.topk(ev.predict(model, split), split["y"], 1)


# ---------------------------------------------------------------- workflow steps
