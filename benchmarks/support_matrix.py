"""Which technique and runtime works on which architecture: the support matrix (docs/support.md + CSV).

Each cell calls the library functions the workflow's steps call, on a seeded *untrained* model at a
tiny input size with a few embedded digits images: fuse (``fusion.fold_bn``), static PTQ through torch.ao
FX (``quantize.graph.prepare/calibrate/convert``), channel pruning with Torch-Pruning
(``prune.prune_channels`` and the recipe rebuild), ONNX export (``runtimes.onnx.export`` + parity), ONNX
Runtime static INT8 (``runtimes.onnxruntime.quantize``) and OpenVINO NNCF INT8 (``runtimes.openvino``).
A cell is ``ok`` with its parity figure, ``unsupported`` with the reason the step itself gives
(:class:`compressflow.unsupported.Unsupported`), or ``error`` (a bug to fix: the workflow would fail).
Parity, not accuracy: the weights are untrained, so top-1 agreement compares two computations of the
same random network.

    python benchmarks/support_matrix.py --out benchmarks/support_matrix.csv --doc docs/support.md
    python benchmarks/support_matrix.py --archs resnet50 --cells fuse,ptq --out /tmp/s.csv   # a subset
"""

from __future__ import annotations

import argparse
import copy
import csv
import sys
import tempfile
from pathlib import Path

import torch

from compressflow import artifacts, data, fusion, models, prune, recipes, sysinfo
from compressflow.quantize import graph
from compressflow.quantize.qconfig import qconfig_spec
from compressflow.unsupported import Unsupported, from_exception

# arch -> arch_kwargs (ViT's position embedding is sized for image_size; 32 px makes 2x2 patches of 16).
ARCHS = {
    "resnet50": {},
    "mobilenet_v3_small": {},
    "efficientnet_b0": {},
    "regnet_y_400mf": {},
    "convnext_tiny": {},
    "vit_b_16": {"image_size": 32},
    "lstm": {},  # compressflow's own RowLSTM (arch: lstm)
}
# Your own module (module + code_path): the example in docs/examples, as a user's config names it.
MODULES = {"mynets.small:build": str(Path(__file__).resolve().parent.parent / "docs" / "examples")}
# The rule of the workflow each cell stands for (how an exception inside a library is classified, as in a run).
CELL_RULES = {
    "fuse": "fuse",
    "ptq": "ptq",
    "prune_channels": "prune_channels",
    "onnx_export": "export_onnx",
    "onnxruntime-int8": "quantize_onnxruntime",
    "openvino-int8": "quantize_openvino",
}
CELLS = ("fuse", "ptq", "prune_channels", "onnx_export", "onnxruntime-int8", "openvino-int8")
SIZE = 32
CALIB = 8
TEST = 16
FIELDS = ["arch", "arch_kwargs", "cell", "status", "metric", "value", "reason"]


def _splits():
    s = data.prepare("digits", SIZE, {"train": 0.6, "calib": 0.1, "val": 0.1, "test": 0.2}, 0)
    global _SETTLE
    _SETTLE = next(data.batches(s["train"], 32))[0]
    calib = {"x": s["calib"]["x"][:CALIB], "y": s["calib"]["y"][:CALIB], "classes": s["calib"]["classes"]}
    test = {"x": s["test"]["x"][:TEST], "y": s["test"]["y"][:TEST], "classes": s["test"]["classes"]}
    return calib, test


_SETTLE = None  # 32 train images: BatchNorm statistics of the untrained model are set from them


def _model(arch: str, kwargs: dict) -> tuple[torch.nn.Module, dict]:
    """A seeded untrained model whose BatchNorm running statistics match the data (at init they are 0/1,
    which leaves some networks' logits near 1e-16 and every parity figure meaningless)."""
    torch.manual_seed(0)
    source = {"module": arch, "code_path": MODULES[arch]} if arch in MODULES else {}
    model = models.build(None if source else arch, 10, **source, **kwargs)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the settling passes
    model.train()
    with torch.no_grad():
        model(_SETTLE)
    for bn in bns:
        bn.momentum = 0.1
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    if not head.weight.any():  # torchvision's ViT zero-initialises its head: every logit would be 0
        torch.nn.init.normal_(head.weight, std=0.02)
    return model.eval(), recipes.base_recipe(arch, 10, kwargs, **source)


def _logits(fn, split) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([fn(x) for x, _ in data.batches(split, 8)])


def _sqnr(own: torch.Tensor, ref: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio of the logits in dB (scale-free: higher is closer to FP32)."""
    noise = (own - ref).pow(2).mean().item()
    return float("inf") if noise == 0 else 10 * torch.log10(ref.pow(2).mean() / noise).item()


def cell_fuse(model, recipe, calib, test, tmp):
    ref = _logits(model, test)
    fused, pairs = fusion.fold_bn(copy.deepcopy(model))
    # the recipe must rebuild the fused tree
    artifacts.save_model(fused, recipes.with_transform(recipe, {"kind": "fold_bn", "pairs": pairs}), tmp / "fused.pt")
    reloaded, _ = artifacts.load_model(tmp / "fused.pt")
    return "rel_max_abs_diff", float((_logits(reloaded, test) - ref).abs().max() / ref.abs().max())


def cell_ptq(model, recipe, calib, test, tmp):
    ref = _logits(model, test)
    spec = qconfig_spec()
    prepared = graph.prepare(copy.deepcopy(model), spec, SIZE)
    graph.calibrate(prepared, calib, CALIB)
    q = graph.convert(prepared)
    if not graph.quantized_layers(q):
        raise AssertionError("convert produced no quantized layer")
    return "sqnr_db", _sqnr(_logits(q, test), ref)


def cell_prune(model, recipe, calib, test, tmp):
    before = models.count_params(model)
    pruned = prune.prune_channels(copy.deepcopy(model), ratio=0.5, input_size=SIZE, importance="l2")
    shapes = prune.record_shapes(pruned)
    artifacts.save_model(pruned, recipes.with_transform(recipe, {"kind": "prune_channels", "ratio": 0.5, "shapes": shapes}), tmp / "p.pt")
    artifacts.load_model(tmp / "p.pt")
    return "params_ratio", models.count_params(pruned) / before


def _onnx(model, test, tmp):
    from compressflow.runtimes import onnx

    path = tmp / "model.onnx"
    if not path.exists():
        x, _ = next(data.batches(test, 2))
        onnx.export(model, x, path, opset=18)
        onnx.check(path)
    return path


def cell_onnx(model, recipe, calib, test, tmp):
    from compressflow.runtimes import onnx

    path = _onnx(model, test, tmp)
    x, _ = next(data.batches(test, TEST))
    with torch.no_grad():
        scale = float(model(x).abs().max())
    return "rel_max_abs_diff", float(onnx.parity(model, path, x)["max_abs_diff"]) / scale


def cell_ort_int8(model, recipe, calib, test, tmp):
    from compressflow.runtimes import onnx, onnxruntime

    src = _onnx(model, test, tmp)
    onnxruntime.quantize(src, tmp / "int8.onnx", calib)
    ref, own = onnx.session(src), onnx.session(tmp / "int8.onnx")
    return "sqnr_db", _sqnr(onnxruntime.predict(own, test, 8), onnxruntime.predict(ref, test, 8))


def cell_ov_int8(model, recipe, calib, test, tmp):
    from compressflow.runtimes import openvino

    src = _onnx(model, test, tmp)
    openvino.convert(src, tmp / "ov" / "model.xml")
    openvino.quantize(tmp / "ov" / "model.xml", tmp / "ov8" / "model.xml", calib, test)
    ref = openvino.predict(openvino.compile_model(tmp / "ov" / "model.xml", 1, "f32"), test, 8)
    own = openvino.predict(openvino.compile_model(tmp / "ov8" / "model.xml", 1, "f32"), test, 8)
    return "sqnr_db", _sqnr(own, ref)


RUN = {
    "fuse": cell_fuse,
    "ptq": cell_ptq,
    "prune_channels": cell_prune,
    "onnx_export": cell_onnx,
    "onnxruntime-int8": cell_ort_int8,
    "openvino-int8": cell_ov_int8,
}


def run_cell(arch: str, kwargs: dict, cell: str, calib, test, tmp: Path) -> dict:
    row = {"arch": arch, "arch_kwargs": repr(kwargs) if kwargs else "", "cell": cell, "metric": "", "value": "", "reason": ""}
    model, recipe = _model(arch, kwargs)
    try:
        metric, value = RUN[cell](model, recipe, calib, test, tmp)
        row.update(status="ok", metric=metric, value=f"{value:.4g}")
    except Unsupported as exc:
        row.update(status="unsupported", reason=str(exc))
    except Exception as exc:  # noqa: BLE001 - the matrix records a bug as "error" and goes on (the workflow fails loudly)
        # an exception inside the library the cell calls is "unsupported", as the workflow's job would say
        found = from_exception(exc, CELL_RULES[cell], {"model": arch, "variant": f"<your {cell} variant>"}, "the job log")
        if found is not None:
            row.update(status="unsupported", reason=str(found))
        else:
            row.update(status="error", reason=f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:200]}")
    return row


def matrix(archs, cells) -> list[dict]:
    calib, test = _splits()
    rows = []
    for arch in archs:
        with tempfile.TemporaryDirectory() as d:
            for cell in cells:
                row = run_cell(arch, ARCHS.get(arch, {}), cell, calib, test, Path(d))
                print(f"{arch:20s} {cell:18s} {row['status']:12s} {row['metric']} {row['value']} {row['reason']}", file=sys.stderr)
                rows.append(row)
    return rows


def write_csv(rows, path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)


def read_csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def cell_text(row: dict) -> str:
    if row["status"] == "ok":
        return f"ok ({row['metric']} {row['value']})"
    return f"{row['status']}: {row['reason'].replace('|', '/')}"


def doc(rows) -> str:
    archs = list(dict.fromkeys(r["arch"] for r in rows))
    cells = list(dict.fromkeys(r["cell"] for r in rows))
    by = {(r["arch"], r["cell"]): r for r in rows}
    env = {k: v for k, v in sysinfo.versions().items() if k in ("torch", "torchvision", "onnxruntime", "openvino", "nncf", "torch_pruning")}
    lines = [
        "# Support matrix: architecture x technique/runtime",
        "",
        "Generated by `benchmarks/support_matrix.py` (CSV: `benchmarks/support_matrix.csv`); do not edit by hand.",
        f"Each cell runs the library functions the workflow's step runs, on a seeded untrained model at {SIZE} px "
        f"with {CALIB} calibration and {TEST} test images of the embedded digits. Figures are parity, not accuracy: "
        "`rel_max_abs_diff` is the largest logit difference from FP32 over the largest FP32 logit, `sqnr_db` the "
        "signal-to-quantization-noise ratio of the INT8 logits against FP32 in dB (higher is closer; random weights "
        "make it lower than a trained model's), `params_ratio` the parameters kept by 50% channel pruning. "
        "BatchNorm statistics are set from 32 training images first (at init they leave some networks' logits near zero), "
        "and a zero-initialised classifier (ViT's) gets N(0, 0.02) weights.",
        "",
        "An `unsupported` cell is what the workflow does too: that variant (and every variant and runtime row built "
        "from it) gets a report row saying so, with the reason and the fix, and the rest of the run finishes.",
        "",
    ]
    if env:
        lines += ["Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(env.items())), ""]
    lines += ["| arch | " + " | ".join(cells) + " |", "|---|" + "---|" * len(cells)]
    for a in archs:
        kw = by[(a, cells[0])]["arch_kwargs"]
        name = f"{a} `{kw}`" if kw else a
        if a in MODULES:
            name = f"your own module: `{a}` ([examples/mynets/small.py](examples/mynets/small.py))"
        elif a == "lstm":
            name = "lstm (RowLSTM)"
        lines.append(f"| {name} | " + " | ".join(cell_text(by[(a, c)]) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default=",".join([*ARCHS, *MODULES]))
    ap.add_argument("--cells", default=",".join(CELLS))
    ap.add_argument("--out", default="benchmarks/support_matrix.csv")
    ap.add_argument("--doc", default=None, help="also write the markdown matrix here (e.g. docs/support.md)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--doc-only", action="store_true", help="only rewrite --doc from the CSV at --out")
    ap.add_argument("--merge", action="store_true", help="replace only these archs' rows of the CSV at --out, keep the others")
    a = ap.parse_args(argv)
    if a.doc_only:
        Path(a.doc).write_text(doc(read_csv(a.out)))
        return
    torch.set_num_threads(a.threads)
    rows = matrix(a.archs.split(","), a.cells.split(","))
    if a.merge and Path(a.out).exists():
        new = {(r["arch"], r["cell"]): r for r in rows}
        kept = [r for r in read_csv(a.out) if (r["arch"], r["cell"]) not in new]
        order = [*ARCHS, *MODULES]
        rows = sorted([*kept, *rows], key=lambda r: (order.index(r["arch"]) if r["arch"] in order else len(order), CELLS.index(r["cell"])))
    write_csv(rows, a.out)
    if a.doc:
        Path(a.doc).write_text(doc(rows))


if __name__ == "__main__":
    main()
