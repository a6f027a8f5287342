"""Does memory stay flat as the data grows, and does streaming keep up with the model?

Generates ImageFolder trees of 2,000 and 20,000 JPEGs (gradients + noise, 200-500 px, varied
aspect) in 1,000 synset-named folders, then runs each stage in a fresh subprocess and reads that
child's own peak RSS (``os.wait4``'s rusage):

  * ``prepare``: scan (sha256 of every file) + decode + resize/crop + write the per-split caches;
  * ``eval``: ResNet18 (1000 classes) over the test split streamed through ``data.batches``, taking
    turns (median of 3) with the same model on pre-made tensors in the same process: the throughput
    check compares these two;
  * ``model_only``: the model on pre-made tensors alone, in its own process (its RSS and speed);
  * ``finetune``: one ``train.fit`` epoch over the train split.

On 2 CPU cores ResNet18 at 224 px is slow, so ``--resize``/``--crop`` shrink the images and
``--cap`` limits how many images eval/fine-tune process (same number at both sizes, so their RSS is
comparable); the CSV records both. Targets: peak RSS of each stage within 10 % between the two
sizes; eval images/s within 15 % of model-only.

    nice python benchmarks/data_scale.py --out benchmarks/data_scale.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

ROUNDS = 3  # eval / model_only passes; the median is reported
FRACTIONS = {"train": 0.6, "calib": 0.1, "val": 0.1, "test": 0.2}


def _make(args):
    path, seed = args
    from PIL import Image

    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(200, 501)), int(rng.integers(200, 501))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c = rng.uniform(0, 255, 3)
    img = np.stack([c[0] * xx / w, c[1] * yy / h, c[2] * (xx + yy) / (h + w)], axis=2)
    img += rng.integers(-25, 26, (h, w, 3))
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=85)


def make_tree(root: Path, n: int, classes: int = 1000) -> None:
    """``n`` JPEGs round-robin over ``classes`` synset folders (``n01440764``-style names); kept if already there."""
    done = root / ".complete"
    if done.exists():
        return
    jobs = []
    for i in range(n):
        folder = root / f"n{1440764 + 7 * (i % classes):08d}"
        folder.mkdir(parents=True, exist_ok=True)
        jobs.append((folder / f"{i:06d}.JPEG", i))
    with Pool(2) as pool:
        pool.map(_make, jobs, chunksize=64)
    done.write_text(str(n))


def _pre(args) -> dict:
    from compressflow import preprocess

    return preprocess.resolve({"input_size": args.crop, "preprocess": {"preset": "imagenet", "resize": args.resize, "crop": args.crop}})


def stage(args) -> dict:
    """One stage in this process; returns what it measured (printed as JSON for the parent)."""
    import torch

    from compressflow import data, models, train

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    if args.stage == "prepare":
        outputs = {n: work / f"{n}.pt" for n in FRACTIONS} | {f"{n}_cache": work / f"{n}.npy" for n in FRACTIONS}
        t0 = time.perf_counter()
        counts = data.write_splits("imagefolder", args.crop, FRACTIONS, 0, outputs, root=args.root, pre=_pre(args))
        return {"images": sum(counts.values()), "seconds": time.perf_counter() - t0}
    torch.manual_seed(0)
    model = models.build("resnet18", 1000)
    if args.stage == "finetune":
        split = data.load_split(work / "train.pt")
        n = min(args.cap, len(split["y"]))
        sub = data.Split(split, y=split["y"][:n])  # the first n images; the cache stays the full split's
        t0 = time.perf_counter()
        train.fit(model, sub, epochs=1, lr=0.01, batch_size=32, seed=0)
        return {"images": n, "seconds": time.perf_counter() - t0}
    model.eval()
    split = data.load_split(work / "test.pt")
    n = min(args.cap, len(split["y"]))
    xs = [torch.randn(min(args.batch, n - i), 3, args.crop, args.crop) for i in range(0, n, args.batch)]

    def model_only() -> float:
        t0 = time.perf_counter()
        for x in xs:
            model(x)
        return time.perf_counter() - t0

    def streamed() -> float:
        t0 = time.perf_counter()
        for x, _ in data.batches(split, args.batch, limit=n):
            model(x)
        return time.perf_counter() - t0

    with torch.no_grad():
        model(torch.zeros(8, 3, args.crop, args.crop))  # warm-up
        if args.stage == "model_only":
            return {"images": n, "seconds": sorted(model_only() for _ in range(ROUNDS))[ROUNDS // 2]}
        # eval: streamed and model-only passes take turns in this process (machine drift hits both), medians
        pairs = [(streamed(), model_only()) for _ in range(ROUNDS)]
        mid = ROUNDS // 2
        return {"images": n, "seconds": sorted(p[0] for p in pairs)[mid], "model_only_seconds": sorted(p[1] for p in pairs)[mid]}


def run_stage(args, name: str, root: Path, work: Path) -> dict:
    cmd = [sys.executable, __file__, "--stage", name, "--root", str(root), "--work", str(work)]
    cmd += [
        "--crop",
        str(args.crop),
        "--resize",
        str(args.resize),
        "--cap",
        str(args.cap),
        "--batch",
        str(args.batch),
        "--threads",
        str(args.threads),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"stage {name} failed ({proc.returncode})")
    got = json.loads(out.strip().splitlines()[-1])
    return {**got, "peak_rss_mb": usage.ru_maxrss / 1024}  # Linux: KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    ap.add_argument("--crop", type=int, default=64)
    ap.add_argument("--resize", type=int, default=73)
    ap.add_argument("--cap", type=int, default=384, help="images processed by eval / model_only / finetune at every size")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--trees", default="/tmp/cf-data-scale", help="where the generated trees and caches live (kept)")
    ap.add_argument("--out", default=str(Path(__file__).with_name("data_scale.csv")))
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stage:
        print(json.dumps(stage(args)))
        return
    from compressflow import sysinfo

    cpu = sysinfo.cpu().get("cpu_model", "unknown")
    rows = []
    for n in args.sizes:
        root, work = Path(args.trees) / f"tree{n}", Path(args.trees) / f"work{n}"
        t0 = time.perf_counter()
        make_tree(root, n)
        print(f"tree {n}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        work.mkdir(parents=True, exist_ok=True)
        for name in ("prepare", "eval", "model_only", "finetune"):
            got = run_stage(args, name, root, work)
            row = {
                "stage": name,
                "tree_images": n,
                "images_processed": got["images"],
                "cap": args.cap if name != "prepare" else "",
                "resize": args.resize,
                "crop": args.crop,
                "batch": args.batch,
                "threads": args.threads,
                "seconds": round(got["seconds"], 3),
                "images_per_s": round(got["images"] / got["seconds"], 2),
                "peak_rss_mb": round(got["peak_rss_mb"], 1),
                "model_only_images_per_s_same_process": round(got["images"] / got["model_only_seconds"], 2)
                if "model_only_seconds" in got
                else "",
                "cpu_model": cpu,
            }
            print(row, file=sys.stderr)
            rows.append(row)
    checks = []
    lo, hi = min(args.sizes), max(args.sizes)
    for name in ("prepare", "eval", "model_only", "finetune"):
        a = next(r for r in rows if r["stage"] == name and r["tree_images"] == lo)
        b = next(r for r in rows if r["stage"] == name and r["tree_images"] == hi)
        ratio = b["peak_rss_mb"] / a["peak_rss_mb"]
        checks.append({"stage": f"check rss {name} {hi} vs {lo}", "value": round(ratio, 4), "target": "<= 1.10", "met": ratio <= 1.10})
    for n in args.sizes:
        ev = next(r for r in rows if r["stage"] == "eval" and r["tree_images"] == n)
        ratio = ev["images_per_s"] / ev["model_only_images_per_s_same_process"]
        checks.append(
            {"stage": f"check eval/model_only throughput {n}", "value": round(ratio, 4), "target": ">= 0.85", "met": ratio >= 0.85}
        )
    fields = [*rows[0], "value", "target", "met"]
    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows + checks)
    for c in checks:
        print(f"{c['stage']}: {c['value']} (target {c['target']}): {'met' if c['met'] else 'MISSED'}", file=sys.stderr)


if __name__ == "__main__":
    main()
