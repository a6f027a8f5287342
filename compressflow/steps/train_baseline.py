"""Rule ``train_baseline``: train the FP32 baseline, or load and check the user's checkpoint."""

from __future__ import annotations

import sys

from compressflow import artifacts, data, device, files, models, recipes, train


def train_baseline(inputs, outputs, params, threads):
    """Train the baseline, or load and check the user's checkpoint instead."""
    spec, seed = params["spec"], params["seed"]
    train_split = data.load_split(inputs["train"])
    classes = train_split["classes"]
    arch_kwargs = spec.get("arch_kwargs", {})
    arch, source = recipes.arch_name(spec), recipes.model_source(spec)
    recipe = recipes.base_recipe(arch, len(classes), arch_kwargs, **source)
    train.seed_everything(seed, threads)
    dev = device.use(params["device"])
    model = models.build(arch, len(classes), **source, **arch_kwargs)
    history = []
    if inputs.get("checkpoint"):
        notes = []
        state = recipes.read_state_dict(inputs["checkpoint"], "checkpoint", spec.get("checkpoint_key"), notes)
        recipes.load_state(model, state, inputs["checkpoint"], len(classes), spec.get("checkpoint_prefix"), notes)
        for note in notes:
            print(f"compressflow: {note}", file=sys.stderr)
    else:
        t = spec["train"]
        history = train.fit(
            model.to(dev),
            train_split,
            epochs=t["epochs"],
            lr=t["lr"],
            batch_size=t["batch_size"],
            seed=seed,
            weight_decay=t["weight_decay"],
            desc=f"train {arch}",
            augment=t.get("augment"),
            amp=t["amp"],
        )
    artifacts.save_model(model.cpu().eval(), recipe, outputs["model"])
    record = {"history": history, "checkpoint": inputs.get("checkpoint")}
    if note := device.amp_note(spec["train"]["amp"], dev):
        record["amp_note"] = note
    files.write_json(record, outputs["history"])
