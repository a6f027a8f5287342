"""The summary's collapsed_classes column and Markdown section, and the per-layer report figures."""

import csv
import hashlib

import pandas as pd
import pytest

from compressflow import files, report
from compressflow.steps.make_report import make_report as make_report_step
from tests.conftest import assert_picture

CLASSES = [str(c) for c in range(10)]


def _per_class(**changes):
    pc = dict.fromkeys(CLASSES, 0.9)
    pc.update({k.lstrip("c"): v for k, v in changes.items()})
    return pc


def _entries(tmp_path, rows):
    entries = []
    for i, (model, variant, runtime, per_class) in enumerate(rows):
        path = tmp_path / f"m{i}.json"
        metrics = {
            "runtime": runtime,
            "top1": 0.9,
            "latency_ms_p50": 1.0 + i,
            "n_test": 360,
            "latency_input": 32,
            "size_mb": 1.0,
            "per_class_top1": per_class,
        }
        files.write_json(metrics, path)
        entries.append(
            {"model": model, "variant": variant, "parent": "" if variant == "fp32" else "fp32", "technique": "ptq", "metrics_path": path}
        )
    return entries


def _summary(tmp_path, max_drop=0.01):
    rows = [
        ("a", "fp32", "pytorch", _per_class()),
        ("a", "q", "pytorch", _per_class(c3=0.9 - 0.083, c8=0.9 - 0.028, c5=0.9 - 0.01)),
        ("a", "fp32", "onnxruntime", _per_class(c8=0.5)),  # compared with a's FP32 PyTorch row too
        ("a", "fp32", "tensorrt-fp16", None),  # skipped runtime: no per-class numbers
        ("b", "fp32", "pytorch", _per_class(c3=0.5)),
        ("b", "q", "pytorch", _per_class(c3=0.5)),  # same as b's own baseline: nothing collapsed
    ]
    return report.summarize(_entries(tmp_path, rows), 1.05, max_drop)


def test_collapsed_classes_column(tmp_path):
    df = _summary(tmp_path).set_index(["model", "variant", "runtime"]).collapsed_classes
    assert df["a", "q", "pytorch"] == "3 (-0.083); 8 (-0.028)"  # class 5 fell exactly the budget: not more than it
    assert df["a", "fp32", "onnxruntime"] == "8 (-0.400)"
    assert df["a", "fp32", "pytorch"] == "" and df["a", "fp32", "tensorrt-fp16"] == ""
    assert df["b", "q", "pytorch"] == "" and df["b", "fp32", "pytorch"] == ""
    assert (
        _summary(tmp_path, max_drop=0.05).set_index(["model", "variant", "runtime"]).collapsed_classes["a", "q", "pytorch"] == "3 (-0.083)"
    )


def test_collapsed_section_in_markdown_and_csv(tmp_path):
    df = _summary(tmp_path)
    report.write(df, tmp_path / "s.csv", tmp_path / "s.md")
    md = (tmp_path / "s.md").read_text()
    section = md.split("## Collapsed classes", 1)[1]
    assert "360 images over 10 classes, about 36 per class" in section and "about 2.8 pt of a class's top-1" in section
    assert "- a / q / pytorch: 3 (-0.083); 8 (-0.028)\n" in section and "- a / fp32 / onnxruntime: 8 (-0.400)" in section
    assert "b / q" not in section
    assert "| collapsed_classes" in md.split("## Collapsed classes")[0].replace("  ", " ")
    back = pd.read_csv(tmp_path / "s.csv")
    assert back.columns[list(back.columns).index("top1_drop_vs_fp32") + 1] == "collapsed_classes"
    assert set(back.collapsed_classes.dropna()) == {"3 (-0.083); 8 (-0.028)", "8 (-0.400)"}


def test_collapsed_section_says_none(tmp_path):
    rows = [("a", "fp32", "pytorch", _per_class()), ("a", "q", "pytorch", _per_class(c1=0.895))]
    df = report.summarize(_entries(tmp_path, rows), 1.05, 0.01)
    report.write(df, tmp_path / "s.csv", tmp_path / "s.md")
    assert (
        (tmp_path / "s.md")
        .read_text()
        .endswith("## Collapsed classes\n\n" + report.collapsed_section(df).split("\n\n", 2)[1] + "\n\nnone\n")
    )


def _csv(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _png(path):
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and b"Software" not in data and b"matplotlib" not in data
    return hashlib.sha256(data).hexdigest()


def _layer_tables(tmp_path, shift=0.0):
    tables = {}
    for i, variant in enumerate(["ptq-x86", "prune/ptq-x86", "mixed"]):
        layers = ["conv1", "layer1.conv", "fc"] if variant != "mixed" else ["layer1.conv"]
        rows = [{"layer": n, "mse": 0.01, "sqnr_db": 30 + i + j + shift} for j, n in enumerate(layers)]
        rows[0]["sqnr_db"] = "inf" if variant == "ptq-x86" else rows[0]["sqnr_db"]
        tables["resnet18", variant] = _csv(tmp_path / f"le{i}.csv", rows)
    tables["mobilenet_v2", "ptq-x86"] = _csv(tmp_path / "le_mb.csv", [{"layer": "features.0", "mse": 0.1, "sqnr_db": 12.5}])
    return tables


def test_figures_are_deterministic_and_follow_the_data(tmp_path):
    sens = {
        "resnet18": _csv(tmp_path / "s.csv", [{"layer": "conv1", "top1": 0.9, "top1_delta": -0.05, "sqnr_db": 20.0, "fp32_top1": 0.95}])
    }
    digests = []
    for i in range(2):
        report.sensitivity_plot(sens, tmp_path / f"sens{i}.png")
        report.layer_error_plot(_layer_tables(tmp_path), tmp_path / f"le{i}.png")
        digests.append((_png(tmp_path / f"sens{i}.png"), _png(tmp_path / f"le{i}.png")))
    assert digests[0] == digests[1]
    report.layer_error_plot(_layer_tables(tmp_path, shift=5.0), tmp_path / "shifted.png")
    assert _png(tmp_path / "shifted.png") != digests[0][1]
    report.sensitivity_plot({}, tmp_path / "none.png")
    report.layer_error_plot({}, tmp_path / "none_le.png")
    assert _png(tmp_path / "none.png") not in {digests[0][0], _png(tmp_path / "none_le.png")}


def test_make_report_step_writes_every_output(tmp_path):
    entries = _entries(tmp_path, [("resnet18", "fp32", "pytorch", _per_class()), ("resnet18", "ptq-x86", "pytorch", _per_class(c2=0.8))])
    tables = _layer_tables(tmp_path)
    names = ["csv", "md", "tex", "pareto_png", "pareto_pdf", "sensitivity_png", "layer_error_png"]
    outputs = {k: str(tmp_path / "out" / f"{k}.out") for k in names}
    params = {
        "entries": [{k: e[k] for k in ("model", "variant", "parent", "technique")} for e in entries],
        "min_speedup": 1.05,
        "max_accuracy_drop": 0.01,
        "stats": dict(report.STATS),
        "seed": 0,
        "sensitivity_models": [],
        "layer_error_tables": [list(k) for k in tables],
    }
    inputs = {"metrics": [str(e["metrics_path"]) for e in entries], "sensitivity": [], "layer_error": [str(p) for p in tables.values()]}
    make_report_step(inputs, outputs, params, threads=1)
    out = tmp_path / "out"
    assert (out / "csv.out").read_text().startswith("model,") and (out / "pareto_pdf.out").read_bytes().startswith(b"%PDF")
    assert "ptq-x86" in (out / "md.out").read_text() and "\\begin{tabular}" in (out / "tex.out").read_text()
    for k in ("pareto_png", "layer_error_png"):
        assert_picture(out / f"{k}.out")
    assert_picture(out / "sensitivity_png.out", min_px=(400, 100), min_colours=2)  # no sensitivity tables: a figure that says so
    assert _png(tmp_path / "out" / "layer_error_png.out") == _png(_plot(report.layer_error_plot, tables, tmp_path / "direct.png"))
    with pytest.raises(ValueError):  # a params/inputs length mismatch must not silently drop a table
        make_report_step(dict(inputs, layer_error=inputs["layer_error"][:-1]), outputs, params, threads=1)


def _plot(fn, tables, path):
    fn(tables, path)
    return path


def test_speedup_vs_fp32_multiplies_the_paired_speedups_along_the_chain():
    """fp32 -> prune (2x, timed against fp32) -> its OpenVINO row (3x, timed against prune): 6x with an interval
    that covers 6; a row whose chain has an unpaired link falls back to the plain ratio and says so (0 links)."""
    import numpy as np
    import pandas as pd

    from compressflow import report

    rng = np.random.default_rng(0)
    calls = {k: list(v * (1 + 0.01 * rng.standard_normal(20))) for k, v in {"fp32": 30.0, "prune": 15.0, "ov": 5.0}.items()}
    df = pd.DataFrame(
        {
            "model": ["m"] * 4,
            "variant": ["fp32", "prune", "prune", "other"],
            "runtime": ["pytorch", "pytorch", "openvino", "tensorrt-fp16"],
            "parent": [None, "fp32", "prune", "other [pytorch-cuda]"],
            "latency_ms_p50": [30.0, 15.0, 5.0, 10.0],
            "speedup_vs_parent": [np.nan, 2.0, 3.0, np.nan],
        }
    )
    own = [calls["fp32"], calls["prune"], calls["ov"], None]
    parents = [None, calls["fp32"], [c * 1.0 for c in calls["prune"]], None]
    report.add_chain_speedups(df, own, parents, 0.95, 500, 0)
    assert df.speedup_vs_fp32.tolist()[:3] == [1.0, 2.0, 6.0]
    assert df.speedup_vs_fp32_links.tolist() == [0, 1, 2, 0]
    assert df.speedup_vs_fp32_lo[2] < 6.0 < df.speedup_vs_fp32_hi[2] and df.speedup_vs_fp32_hi[2] < 7.0
    assert df.speedup_vs_fp32[3] == 3.0 and np.isnan(df.speedup_vs_fp32_lo[3])  # unpaired: 30 / 10, no interval
    again = df.copy()
    report.add_chain_speedups(again, own, parents, 0.95, 500, 0)
    assert again.speedup_vs_fp32_lo.equals(df.speedup_vs_fp32_lo)  # seeded
