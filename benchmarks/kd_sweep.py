"""Does knowledge distillation beat the same student trained without it? A small seeded sweep.

Every run goes through the workflow's own step, ``compressflow.steps.distill`` (which uses
``distill.student_model``, ``distill.make_loss`` and ``train.fit``), on the run's data splits, with the
ResNet18 fp32 model as teacher and the teacher's ``models.resnet18.train`` batch size / weight decay.
Each KD setting has a no-KD twin (alpha 0: same student, epochs, lr, seed, so the same init and batch
order). Students:

  * ``mbv2w05`` / ``mbv2w035``: a fresh MobileNetV2 of width 0.5 / 0.35 (``student: {arch: ...}``);
  * ``prune70``: ResNet18 channel-pruned 70% by ``compressflow.steps.prune_channels`` with ``finetune_epochs: 0``
    (``student_from:`` such a variant), i.e. KD fine-tuning of the raw pruned weights.

Selection is on validation top-1 only (mean over seeds of the paired KD - no-KD difference); test top-1
is written for every row but must be read only for the setting chosen on val.
One CPU thread per run; rows are appended as they finish and rows already in ``--out`` are skipped, so an
interrupted sweep resumes.

    python benchmarks/kd_sweep.py --results results --out benchmarks/kd_sweep.csv
    python benchmarks/kd_sweep.py --out benchmarks/kd_sweep.csv --summary   # the table only
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from compressflow import artifacts, data, layout, sysinfo
from compressflow import evaluate as ev
from compressflow.steps.distill import distill as distill_step
from compressflow.steps.prune_channels import prune_channels as prune_channels_step

MBV2 = {"arch": "mobilenet_v2", "arch_kwargs": {"width_mult": 0.5}}
MBV2_035 = {"arch": "mobilenet_v2", "arch_kwargs": {"width_mult": 0.35}}
PRUNE_RATIO = 0.7

# (group, student, epochs, lr, [(temperature, alpha), ...]); alpha 0 (no KD) is added to every group.
GRID = [
    ("mbv2w05-e8", "mbv2w05", 8, 0.05, [(4, 0.7)]),  # today's default pair
    ("mbv2w05-e20", "mbv2w05", 20, 0.05, [(2, 0.5), (4, 0.5), (2, 0.9), (4, 0.9)]),
    ("mbv2w05-e30", "mbv2w05", 30, 0.05, [(4, 0.7)]),
    ("mbv2w035-e20", "mbv2w035", 20, 0.05, [(4, 0.5), (4, 0.9)]),
    ("prune70-e10", "prune70", 10, 0.02, [(4, 0.5), (2, 0.9), (4, 0.9)]),
]
SEEDS = (0, 1, 2)
FIELDS = [
    "group",
    "student",
    "epochs",
    "lr",
    "temperature",
    "alpha",
    "kd",
    "seed",
    "val_top1",
    "test_top1",
    "val_n",
    "test_n",
    "teacher_val_top1",
    "student_params",
    "train_wall_s",
    "threads",
    "batch_size",
    "weight_decay",
    "cpu",
]


def runs():
    for seed in SEEDS:  # seeds outermost: an interrupted sweep still covers every setting
        for group, student, epochs, lr, kd in GRID:
            for temperature, alpha in [(4, 0.0), *kd]:
                yield {
                    "group": group,
                    "student": student,
                    "epochs": epochs,
                    "lr": lr,
                    "temperature": temperature,
                    "alpha": alpha,
                    "seed": seed,
                }


def key(row) -> tuple:
    return (row["group"], float(row["temperature"]), float(row["alpha"]), int(row["seed"]))


def pruned_student(results: Path, train_cfg: dict, size: int, work: Path) -> Path:
    """The raw 70%-channel-pruned ResNet18 (no fine-tune), built by the workflow's prune step."""
    out = work / "prune70" / "model.pt"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        prune_channels_step(
            {
                "model": layout.artifact("resnet18", layout.ROOT_VARIANT, results=str(results)),
                "train": str(results / "data/train.pt"),
                "val": str(results / "data/val.pt"),
            },
            {"model": str(out), "stats": str(out.parent / "prune_stats.json")},
            {
                "knobs": {
                    "ratio": PRUNE_RATIO,
                    "finetune_epochs": 0,
                    "lr": 0.01,
                    "iterative_steps": 1,
                    "ignored_layers": [],
                    "importance": "l2",
                },
                "train": train_cfg,
                "seed": 0,
                "input_size": size,
                "latency_input": size,
            },
            1,
        )
    return out


def summary(path: Path) -> str:
    """Per setting: val top-1 mean/std over seeds, and the paired (same seed) difference to its group's no-KD run."""
    import pandas as pd

    df = pd.read_csv(path)
    base = df[df.alpha == 0].set_index(["group", "seed"])["val_top1"]
    df["val_gain_vs_nokd"] = [v - base.get((g, s), float("nan")) for g, s, v in zip(df.group, df.seed, df.val_top1, strict=True)]
    agg = df.groupby(["group", "temperature", "alpha"], sort=False).agg(
        seeds=("seed", "count"),
        val_per_seed=("val_top1", lambda v: " ".join(f"{x:.3f}" for x in v)),
        val_mean=("val_top1", "mean"),
        val_std=("val_top1", "std"),
        gain_mean=("val_gain_vs_nokd", "mean"),
        gain_std=("val_gain_vs_nokd", "std"),
        train_s=("train_wall_s", "mean"),
    )
    return agg.round(4).to_string()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results", help="a finished run: data/*.pt and resnet18/fp32/model.pt")
    ap.add_argument("--out", default="benchmarks/kd_sweep.csv")
    ap.add_argument("--summary", action="store_true", help="only print the per-setting val summary of --out")
    ap.add_argument("--batch-size", type=int, default=64, help="config models.resnet18.train.batch_size")
    ap.add_argument("--weight-decay", type=float, default=5e-4, help="config models.resnet18.train.weight_decay")
    args = ap.parse_args(argv)
    if args.summary:
        print(summary(Path(args.out)))
        return 0
    torch.set_num_threads(1)
    results, out = Path(args.results), Path(args.out)
    train_cfg = {"batch_size": args.batch_size, "weight_decay": args.weight_decay}
    test = data.load_split(results / "data/test.pt")
    size = int(test["x"].shape[-1])
    cpu = sysinfo.cpu()["cpu_model"]
    done = set()
    if out.exists():
        with out.open() as f:
            done = {key(r) for r in csv.DictReader(f)}
    new_file = not out.exists()
    with tempfile.TemporaryDirectory(prefix="kd_sweep_") as tmp, out.open("a", newline="") as f:
        work = Path(tmp)
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        if new_file:
            writer.writeheader()
        for r in runs():
            if key(r) in done:
                continue
            inputs = {
                "model": layout.artifact("resnet18", layout.ROOT_VARIANT, results=str(results)),
                "train": str(results / "data/train.pt"),
                "val": str(results / "data/val.pt"),
            }
            knobs = {"temperature": r["temperature"], "alpha": r["alpha"], "epochs": r["epochs"], "lr": r["lr"]}
            if r["student"] == "prune70":
                inputs["student"] = str(pruned_student(results, train_cfg, size, work))
                knobs["student_from"] = "prune-ch70-raw"
            else:
                knobs["student"] = MBV2 if r["student"] == "mbv2w05" else MBV2_035
            outputs = {"model": str(work / "model.pt"), "stats": str(work / "distill.json")}
            t0 = time.perf_counter()
            distill_step(inputs, outputs, {"knobs": knobs, "train": train_cfg, "seed": r["seed"]}, 1)
            wall = time.perf_counter() - t0
            stats = json.loads((work / "distill.json").read_text())
            model, _ = artifacts.load_model(work / "model.pt")
            with torch.no_grad():
                test_top1 = ev.topk(ev.predict(model, test), test["y"], 1)
            row = {
                **r,
                "kd": r["alpha"] > 0,
                "val_top1": round(stats["val_top1"]["student"], 6),
                "test_top1": round(test_top1, 6),
                "val_n": len(data.load_split(results / "data/val.pt")["y"]),
                "test_n": len(test["y"]),
                "teacher_val_top1": round(stats["val_top1"]["teacher"], 6),
                "student_params": stats["student_params"],
                "train_wall_s": round(wall, 2),
                "threads": torch.get_num_threads(),
                "batch_size": args.batch_size,
                "weight_decay": args.weight_decay,
                "cpu": cpu,
            }
            writer.writerow(row)
            f.flush()
            print(f"kd_sweep: {r} val {row['val_top1']:.4f} ({wall:.1f} s)", file=sys.stderr, flush=True)
    print(summary(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
