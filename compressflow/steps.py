"""One function per workflow rule: ``step(inputs, outputs, params, threads)`` on plain dicts."""

from __future__ import annotations

import sys

import torch

from compressflow import data, fusion, io, models, provenance, recipes, report, train
from compressflow import evaluate as ev
from compressflow.errors import CompressflowError


def prepare_data(inputs, outputs, params, threads):
    ds = params["dataset"]
    splits = data.prepare(
        ds["kind"],
        ds["input_size"],
        ds["splits"],
        params["seed"],
        root=ds.get("root"),
        max_pixels=params.get("max_image_pixels", data.MAX_IMAGE_PIXELS),
        manifest=params.get("manifest"),
    )
    for name, split in splits.items():
        io.save_tensors(split, outputs[name])


def train_baseline(inputs, outputs, params, threads):
    """Train the baseline, or load and check the user's checkpoint instead."""
    spec, seed = params["spec"], params["seed"]
    train_split = data.load_split(inputs["train"])
    classes = train_split["classes"]
    arch_kwargs = spec.get("arch_kwargs", {})
    recipe = recipes.base_recipe(spec["arch"], len(classes), arch_kwargs)
    train.seed_everything(seed, threads)
    model = models.build(spec["arch"], len(classes), **arch_kwargs)
    history = []
    if inputs.get("checkpoint"):
        state = recipes.read_state_dict(inputs["checkpoint"], "checkpoint")
        recipes.load_state(model, state, inputs["checkpoint"])
    else:
        t = spec["train"]
        history = train.fit(
            model,
            train_split,
            epochs=t["epochs"],
            lr=t["lr"],
            batch_size=t["batch_size"],
            seed=seed,
            weight_decay=t["weight_decay"],
            desc=f"train {spec['arch']}",
        )
    io.save_model(model.eval(), recipe, outputs["model"])
    io.write_json({"history": history, "checkpoint": inputs.get("checkpoint")}, outputs["history"])


def fuse_model(inputs, outputs, params, threads):
    """Fold BN into convs and prove the fused model computes the same function."""
    torch.set_num_threads(threads)
    model, recipe = io.load_model(inputs["model"])
    reference, _ = io.load_model(inputs["model"])
    fused, pairs = fusion.fold_bn(model)
    x, _ = next(data.batches(data.load_split(inputs["val"]), 64))
    diff = fusion.max_output_diff(reference, fused, x)
    if diff > params["tolerance"]:
        raise CompressflowError(
            f"fused model differs from its parent by {diff:.3g} (> {params['tolerance']:g})",
            "report this model; fusion must not change outputs",
        )
    print(f"fused {len(pairs)} conv+bn pairs; max |logit diff| on a val batch = {diff:.3g}", file=sys.stderr)
    io.save_model(fused, recipes.with_transform(recipe, {"kind": "fold_bn", "pairs": pairs}), outputs["model"])


def evaluate(inputs, outputs, params, threads):
    model, _ = io.load_model(inputs["model"])
    test = data.load_split(inputs["test"])
    parent, parent_logits = None, None
    if inputs.get("parent_model"):
        parent, _ = io.load_model(inputs["parent_model"])
        parent_logits = io.load_tensors(inputs["parent_logits"], "parent logits")
    lat = params["latency"]
    metrics, logits = ev.evaluate(
        model,
        test,
        inputs["model"],
        batch_size=params["batch_size"],
        threads=params["threads"],
        latency_input=lat["input_size"],
        warmup=lat["warmup"],
        iters=lat["iters"],
        parent=parent,
        parent_logits=parent_logits,
    )
    io.save_tensors(logits, outputs["logits"])
    io.write_json(metrics, outputs["metrics"])


def make_report(inputs, outputs, params, threads):
    entries = [dict(e, metrics_path=p) for e, p in zip(params["entries"], inputs["metrics"], strict=True)]
    df = report.summarize(entries, params["min_speedup"], params["max_accuracy_drop"], options=params["stats"], seed=params["seed"])
    report.write(df, outputs["csv"], outputs["md"])
    report.latex_table(df, outputs["tex"], params["stats"]["latex_interval"])
    report.pareto_plot(df, outputs["pareto_png"], outputs["pareto_pdf"])
    report.sensitivity_plot(dict(zip(params["sensitivity_models"], inputs["sensitivity"], strict=True)), outputs["sensitivity_png"])
    layer_tables = {(m, v): p for (m, v), p in zip(params["layer_error_tables"], inputs["layer_error"], strict=True)}
    report.layer_error_plot(layer_tables, outputs["layer_error_png"])


def record_environment(inputs, outputs, params, threads):
    provenance.write_environment(outputs["txt"], outputs["yml"])
