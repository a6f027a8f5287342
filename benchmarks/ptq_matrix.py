"""The static PTQ matrix on a finished run's FP32 model: which qconfig knobs matter, and by how much?

One factor at a time around the workflow's default PTQ (x86, histogram, affine, per-channel, 128 calib
images), plus the full observer x activation x per-channel grid on x86. Each point calibrates and
converts with the workflow's own functions (``quantize.graph.build_static``), then records val/test top-1,
the SQNR of the test logits against FP32, the saved size, and batch-1 latency at ``--input-size``
timed in alternating blocks with the FP32 model in the same process. Every row carries the CPU model
and ISA flags. The qnnpack backend targets ARM; on x86 it runs but is not meant to be fast there.

    python benchmarks/ptq_matrix.py --results results --model resnet18 --out benchmarks/ptq_matrix.csv
"""

from __future__ import annotations

import argparse
import csv
import itertools
import sys
import tempfile
from pathlib import Path

import torch

from compressflow import artifacts, data, layout, measure, recipes, sysinfo
from compressflow import evaluate as ev
from compressflow.quantize import error, graph, qconfig, rebuild

DEFAULT = {"backend": "x86", "observer": "histogram", "activation": "affine", "per_channel": True, "calib_size": 128}


def points(calib_sizes: list[int]) -> list[dict]:
    grid = [
        dict(DEFAULT, observer=o, activation=a, per_channel=pc)
        for o, a, pc in itertools.product(qconfig.OBSERVERS, qconfig.ACTIVATIONS, (True, False))
    ]
    grid += [dict(DEFAULT, backend=b) for b in qconfig.BACKENDS if b != DEFAULT["backend"]]
    grid += [dict(DEFAULT, calib_size=n) for n in calib_sizes if n != DEFAULT["calib_size"]]
    return grid


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--model", default="resnet18")
    p.add_argument("--out", type=Path, default=Path("benchmarks/ptq_matrix.csv"))
    p.add_argument("--calib-sizes", type=int, nargs="+", default=[8, 32, 128, 179])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--iters", type=int, default=50)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    fp32, recipe = artifacts.load_model(layout.artifact(args.model, layout.ROOT_VARIANT, results=str(args.results)))
    calib, val, test = (data.load_split(args.results / "data" / f"{s}.pt") for s in ("calib", "val", "test"))
    ref_val, ref_test = ev.predict(fp32, val), ev.predict(fp32, test)
    base = {"val": ev.topk(ref_val, val["y"], 1), "test": ev.topk(ref_test, test["y"], 1)}
    example = torch.zeros(1, 3, args.input_size, args.input_size)
    cpu = sysinfo.cpu()
    rows = []
    for point in points(args.calib_sizes):
        spec = qconfig.qconfig_spec(point["backend"], point["observer"], point["activation"], point["per_channel"])
        q = graph.build_static(fp32, spec, calib, graph.check_calib_size(calib, point["calib_size"]))
        test_logits = ev.predict(q, test)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.pt"
            t = rebuild.transform("ptq", spec, int(calib["x"].shape[-1]), calib_size=point["calib_size"])
            artifacts.save_model(q, recipes.with_transform(recipe, t), path)
            size_mb = path.stat().st_size / 2**20
        times = measure.time_alternating({"q": q, "fp32": fp32}, example, warmup=5, iters=args.iters)
        p50, p50_fp32 = (measure.summary(times[k], 1)["latency_ms_p50"] for k in ("q", "fp32"))
        row = {
            **point,
            "val_top1": ev.topk(ev.predict(q, val), val["y"], 1),
            "test_top1": ev.topk(test_logits, test["y"], 1),
            "test_top1_drop_vs_fp32": base["test"] - ev.topk(test_logits, test["y"], 1),
            "sqnr_db_vs_fp32": error.sqnr_db(ref_test, test_logits),
            "size_mb": size_mb,
            "latency_ms_p50": p50,
            "fp32_latency_ms_p50": p50_fp32,
            "speedup_vs_fp32": p50_fp32 / p50,
            "threads": args.threads,
            "input_size": args.input_size,
            **cpu,
        }
        rows.append(row)
        print(
            f"{point}: test top1 {row['test_top1']:.4f} SQNR {row['sqnr_db_vs_fp32']:.1f} dB, {p50:.2f} ms ({row['speedup_vs_fp32']:.2f}x)",
            file=sys.stderr,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
