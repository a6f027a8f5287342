"""Rule ``prune_channels``: structured channel pruning with Torch-Pruning, fine-tuned."""

from __future__ import annotations

import sys

from compressflow import artifacts, data, device, files, prune, recipes, train


def prune_channels(inputs, outputs, params, threads):
    """Channel pruning with Torch-Pruning, fine-tuned; the recipe records the new shapes."""
    k, t, seed = params["knobs"], params["train"], params["seed"]
    size, lat_size = params["input_size"], params["latency_input"]
    train.seed_everything(seed, threads)
    dev = device.use(params["device"])
    model, recipe = artifacts.load_model(inputs["model"])
    trainset, val = data.load_split(inputs["train"]), data.load_split(inputs["val"])
    steps = int(k["iterative_steps"])
    epochs = prune.split_epochs(int(k["finetune_epochs"]), steps)
    before = {"data": prune.count_macs_params(model, size), "latency": prune.count_macs_params(model, lat_size)}
    top1_parent = prune.top1_of(model, val)
    history = []

    def finetune(step, m, n):
        # Pruning and MAC counting run on the CPU; only the fine-tuning runs on the device.
        m.to(dev)
        history.extend(
            dict(h, prune_step=step + 1)
            for h in train.fit(
                m,
                trainset,
                epochs=n,
                lr=k["lr"],
                batch_size=t["batch_size"],
                seed=seed + step,
                weight_decay=t["weight_decay"],
                desc=f"finetune prune_channels step {step + 1}/{steps}",
                augment=t.get("augment"),
                amp=t["amp"],
            )
        )
        m.cpu()

    prune.prune_channels(
        model,
        ratio=k["ratio"],
        input_size=size,
        ignored_layers=k["ignored_layers"],
        iterative_steps=steps,
        importance=k["importance"],
        between_steps=lambda s, m: finetune(s, m, epochs[s]),
    )
    top1_pruned = prune.top1_of(model, val)
    finetune(steps - 1, model, epochs[-1])
    model.eval()
    after = {"data": prune.count_macs_params(model, size), "latency": prune.count_macs_params(model, lat_size)}
    shapes = prune.record_shapes(model)
    stats = {
        "ratio": k["ratio"],
        "importance": k["importance"],
        "iterative_steps": steps,
        "ignored_layers": prune.resolve_ignored(model, k["ignored_layers"]),
        "input_size": size,
        "latency_input": lat_size,
        "params_before": before["data"]["params"],
        "params_after": after["data"]["params"],
        "params_ratio": after["data"]["params"] / before["data"]["params"],
        "macs_before": before["data"]["macs"],
        "macs_after": after["data"]["macs"],
        "macs_ratio": after["data"]["macs"] / before["data"]["macs"],
        "macs_before_latency_input": before["latency"]["macs"],
        "macs_after_latency_input": after["latency"]["macs"],
        "macs_ratio_latency_input": after["latency"]["macs"] / before["latency"]["macs"],
        "val_top1": {"parent": top1_parent, "after_prune": top1_pruned, "after_finetune": prune.top1_of(model, val)},
        "finetune_history": history,
    }
    print(
        f"prune_channels: params x{stats['params_ratio']:.3f}, MACs x{stats['macs_ratio']:.3f}; val top1 "
        f"{top1_parent:.4f} -> {top1_pruned:.4f} (pruned) -> {stats['val_top1']['after_finetune']:.4f} (fine-tuned)",
        file=sys.stderr,
    )
    artifacts.save_model(
        model, recipes.with_transform(recipe, {"kind": "prune_channels", "ratio": k["ratio"], "shapes": shapes}), outputs["model"]
    )
    files.write_json(stats, outputs["stats"])
