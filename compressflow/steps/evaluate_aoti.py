"""Rule ``evaluate_aoti``: the ``pytorch-aoti`` row, an AOTInductor package loaded with ``aoti_load_package``."""

from __future__ import annotations

import sys
import tempfile

import torch

from compressflow import artifacts, files, layout
from compressflow.runtimes import compile as pt2
from compressflow.runtimes import pytorch
from compressflow.steps.evaluate_compile import pt2_row


def evaluate_aoti(inputs, outputs, params, threads):
    """Against eager PyTorch for a float model; against its own compiled graph (the pytorch row, as it runs) for PT2E INT8."""
    torch.set_num_threads(params["threads"])
    torch_model, torch_logits = pytorch.reference(inputs)
    recipe = artifacts.read_recipe(inputs["torch_model"])
    build = files.read_json(inputs["build"])
    size = params["latency"]["input_size"]
    with tempfile.TemporaryDirectory(prefix="inductor-") as cache, pt2.cache_dir(cache):
        own = pt2.aoti_load(inputs["package"], params["threads"])
        accuracy = pt2.aoti_load(inputs["accuracy"], params["threads"])
        if pytorch.api(recipe) == "pt2e":
            timed = artifacts.load_model_at_size(inputs["torch_model"], size)
            parent, _ = pt2.compile_model(timed, torch.zeros(1, 3, size, size), params["threads"])
            parent_fn, parent_runtime = torch.no_grad()(parent), f"{layout.PYTORCH} ({pt2.SETTING})"
        else:
            parent_fn, parent_runtime = pytorch.runner(torch_model, params["threads"]), layout.PYTORCH
        row = pt2_row(
            params["runtime"],
            own,
            parent_fn,
            parent_runtime,
            inputs,
            params,
            torch_model,
            torch_logits,
            {"build": build},
            predict_fn=accuracy,
        )
    row["precision"] = build["precision"]
    row["quant_api"] = build["quant_api"]
    print(f"{params['runtime']}: top1 {row['top1']:.4f}, p50 {row['latency_ms_p50']:.2f} ms", file=sys.stderr)
    files.write_json(row, outputs["metrics"])
