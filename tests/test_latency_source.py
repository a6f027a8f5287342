"""One latency per artifact: every report file shows the number its benchmark_artifact job measured (issue 16)."""

import json
import re

import pandas as pd
import pytest

from compressflow import layout, report


def _md_table(text: str) -> pd.DataFrame:
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]
    return pd.DataFrame(rows, columns=head)


def _tex_rows(text: str) -> dict:
    """(model, variant, runtime) -> the p50 cell of table.tex."""
    out = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.rstrip().removesuffix("\\\\").split("&")]
        if len(cells) == 9 and cells[0] != "Model":
            key = tuple(c.replace(r"\_", "_").replace(r" $\star$", "") for c in cells[:3])
            out[key] = cells[6]
    return out


def test_every_report_file_agrees_with_the_exclusive_benchmark(tiny_run):
    res = tiny_run / "results" / "report"
    summary = pd.read_csv(res / "summary.csv")
    bench = pd.read_csv(res / "benchmark.csv")
    b1 = bench[bench.batch == 1].set_index(["model", "variant", "runtime"])
    md = _md_table((res / "summary.md").read_text()).set_index(["model", "variant", "runtime"])
    lat_col = next(c for c in md.columns if c.startswith("latency_ms_p50"))
    tex = _tex_rows((res / "table.tex").read_text())
    artifacts = summary[summary.n_seeds.isna() & summary.runtime.isin(layout.CPU_RUNTIMES)]
    assert len(artifacts) >= 15 and artifacts.latency_ms_p50.notna().all()
    for row in artifacts.itertuples():
        key = (row.model, row.variant, row.runtime)
        b = b1.loc[key]
        assert row.latency_ms_p50 == pytest.approx(b.latency_ms_p50, rel=1e-5), key  # summary.csv keeps 6 digits
        assert md.loc[key, lat_col].split(" ")[0] == f"{b.latency_ms_p50:.4g}", key
        assert tex[key].split(" ")[0] == f"{b.latency_ms_p50:.2f}", key
        rec = json.loads((tiny_run / layout.benchmark_json(*key)).read_text())
        has_parent = rec["parent_runtime"] is not None
        assert has_parent == (row.variant != layout.ROOT_VARIANT or row.runtime != layout.PYTORCH), key
        if has_parent:
            assert row.speedup_vs_parent == pytest.approx(b.speedup_vs_parent, rel=1e-5), key
            assert row.parent_latency_ms_p50 == pytest.approx(b.parent_latency_ms_p50, rel=1e-5), key
    # The recommendation and the Pareto front are built on the same column.
    for model, g in summary[summary.n_seeds.isna()].groupby("model"):
        ok = g[(g.top1_drop_vs_fp32_ub <= 0.01) & g.latency_ms_p50.notna()]
        chosen = g[g.recommended == True]  # noqa: E712
        assert chosen.latency_ms_p50.tolist() == [ok.latency_ms_p50.min()], model
        front = report.pareto_front(g[g.latency_ms_p50.notna() & g.top1.notna()])
        assert set(front.latency_ms_p50) <= set(artifacts.latency_ms_p50), model


def test_evaluate_jobs_time_nothing_that_reaches_the_report(tiny_run):
    """CPU evaluate jobs write no latency; OpenVINO's hint comparison is labelled as such."""
    for path in (tiny_run / "results").rglob("metrics.json"):
        m = json.loads(path.read_text())
        if m.get("runtime") in layout.CPU_RUNTIMES:
            assert not any(re.fullmatch(r"latency_ms_p\d+|speedup_vs_parent|parent_latency_ms_p50", k) for k in m), path


def test_skipped_tensorrt_rows_are_written_without_jobs(tiny_run):
    """deploy.tensorrt.mode auto on a host without TensorRT: no TensorRT job, the row still in the report with its reason."""
    summary = pd.read_csv(tiny_run / "results" / "report" / "summary.csv")
    trt = summary[summary.runtime.isin(layout.TRT_RUNTIMES)]
    decision = json.loads((tiny_run / ".snakemake" / "compressflow-tensorrt-auto.json").read_text())
    assert len(trt) >= 1
    if decision["skipped"]:
        assert not list((tiny_run / "results").rglob("tensorrt-*/build.json"))
        assert trt.note.str.startswith("skipped: ").all() and trt.latency_ms_p50.isna().all()
