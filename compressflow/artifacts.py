"""Model files that reload with ``weights_only=True``: a recipe plus a state dict.

A model file is a dict ``{"format", "recipe", "state_dict"}``. The recipe is plain
data (str/int/float/list/dict) that says how to rebuild the module tree (architecture,
then each structural transform such as BN folding or channel pruning) before the state
dict is loaded, so no pickled code is ever needed to restore a model.
"""

from __future__ import annotations

import torch

from compressflow import device, files, recipes
from compressflow.errors import CompressflowError

__all__ = ["MODEL_FORMAT", "save_model", "load_model", "load_model_at_size", "read_recipe"]

MODEL_FORMAT = "compressflow-model/1"


def save_model(model: torch.nn.Module, recipe: dict, path) -> None:
    """Save ``model`` as recipe + state dict (tensors only), always from the CPU, so files load anywhere."""
    if device.of(model).type != "cpu":
        model.cpu()
    payload = {"format": MODEL_FORMAT, "recipe": recipe, "state_dict": model.state_dict()}
    files.save_tensors(payload, path)


def _payload(path) -> dict:
    payload = files.load_tensors(path, "model file")
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise CompressflowError(
            f"model file '{path}' is not a compressflow model", "produce it with the workflow, or pass it as models.<name>.checkpoint"
        )
    return payload


def read_recipe(path) -> dict:
    """The recipe a model file records, without rebuilding the model (rebuilding a QAT PT2E graph re-exports
    and re-converts it: about 15 s for ResNet18 on 2 cores)."""
    return _payload(path)["recipe"]


def load_model(path, input_size: int | None = None) -> tuple[torch.nn.Module, dict]:
    """Rebuild the module tree from the recorded recipe, then load the weights; (model, recorded recipe).

    With ``input_size``, a PT2E artifact's converted graph is rebuilt for ``input_size``² inputs (see
    :func:`load_model_at_size`); other models ignore it. The file is read once either way.
    """
    payload = _payload(path)
    recorded = payload["recipe"]
    recipe, at_size = recorded, input_size is not None and recipes.is_size_bound(recorded)
    if at_size:
        t = dict(recorded["transforms"][-1], input_size=int(input_size))
        recipe = recipes.with_transform(dict(recorded, transforms=recorded["transforms"][:-1]), t)
    model = recipes.rebuild(recipe)
    recipes.load_state(model, payload["state_dict"], str(path))
    model = recipes.finish(model, recipe)
    if not at_size:
        model.eval()
    return model, recorded


def load_model_at_size(path, input_size: int) -> torch.nn.Module:
    """A PT2E artifact's converted graph for ``input_size``² inputs: same calibrated state, same weights.

    Exported graphs have a static height/width (``quantize/pt2e.py``); the state dict's keys do not depend
    on the size, so the recorded recipe is replayed at another size. Other models are size-agnostic and
    load as they are.
    """
    return load_model(path, input_size)[0]
