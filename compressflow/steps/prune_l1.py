"""Rule ``prune_l1``: global L1 unstructured sparsity, fine-tuned, made permanent."""

from __future__ import annotations

import sys

from compressflow import artifacts, data, device, files, prune, train


def prune_l1(inputs, outputs, params, threads):
    """Global L1 sparsity, fine-tuned with masks on, then made permanent; shapes unchanged."""
    k, t, seed = params["knobs"], params["train"], params["seed"]
    train.seed_everything(seed, threads)
    dev = device.use(params["device"])
    model, recipe = artifacts.load_model(inputs["model"])
    trainset, val = data.load_split(inputs["train"]), data.load_split(inputs["val"])
    dense_sizes = prune.storage_sizes(model)
    top1_parent = prune.top1_of(model, val)
    layers = prune.l1_unstructured(model, k["amount"])
    top1_pruned = prune.top1_of(model, val)
    history = train.fit(
        model.to(dev),  # masks move with the weights; sizes are measured on the CPU
        trainset,
        epochs=k["finetune_epochs"],
        lr=k["lr"],
        batch_size=t["batch_size"],
        seed=seed,
        weight_decay=t["weight_decay"],
        desc="finetune prune_l1",
        augment=t.get("augment"),
        amp=t["amp"],
    )
    prune.make_permanent(layers)
    model.cpu().eval()
    stats = {
        "requested_amount": k["amount"],
        **prune.sparsity(model),
        "storage": prune.storage_sizes(model),
        "parent_storage": dense_sizes,
        "val_top1": {"parent": top1_parent, "after_prune": top1_pruned, "after_finetune": prune.top1_of(model, val)},
        "finetune_history": history,
        "note": prune.L1_NOTE,
    }
    print(f"prune_l1: sparsity {stats['sparsity_prunable']:.4f} of conv/linear weights (asked {k['amount']})", file=sys.stderr)
    artifacts.save_model(model, recipe, outputs["model"])
    files.write_json(stats, outputs["sparsity"])
