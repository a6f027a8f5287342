"""benchmarks/results_md.py: the generated section of docs/results.md comes from summary.csv, and only it changes."""

import pandas as pd
import pytest

from benchmarks import results_md
from compressflow.report import COLUMNS

CPU = "AMD EPYC 7B13"
ISA = "avx2 avx512f avx512_vnni"


def _summary(tmp_path):
    """A summary.csv with the columns make_report writes (report.COLUMNS + speedup_vs_fp32, recommended)."""
    base = {c: None for c in COLUMNS}
    base.update(model="resnet18", runtime="pytorch", n_test=360, threads=2, latency_input=224, cpu_model=CPU, isa=ISA, seed=0)
    rows = [
        {**base, "variant": "fp32", "technique": "train", "top1": 0.975, "top1_lo": 0.953, "top1_hi": 0.987, "size_mb": 42.7282,
         "latency_ms_p50": 13.51, "recommended": False},
        {**base, "variant": "ptq-x86", "parent": "fp32", "technique": "ptq", "top1": 0.9778, "top1_lo": 0.957, "top1_hi": 0.989,
         "size_mb": 10.79, "latency_ms_p50": 3.742, "verdict_vs_parent": "no significant change", "recommended": True},
        {**base, "variant": "dyn-int8", "parent": "fp32", "technique": "dynamic", "top1": 0.975, "top1_lo": 0.953, "top1_hi": 0.987,
         "size_mb": 42.71, "latency_ms_p50": 15.8, "verdict_vs_parent": "no significant change",
         "note": "compressed but not faster (speedup < 1.05x)", "recommended": False},
    ]  # fmt: skip
    df = pd.DataFrame(rows).reindex(columns=[*COLUMNS, "speedup_vs_fp32", "recommended"])
    (tmp_path / "results" / "report").mkdir(parents=True)
    df.to_csv(tmp_path / "results" / "report" / "summary.csv", index=False, float_format="%.6g")
    return df


DOC = """# Measured results

Hand-written intro | with a pipe.

<!-- results:begin -->
old generated text
<!-- results:end -->

## Composition (hand-written)

| a | b |
|---|---|
| 1 | 2 |
"""


def _run(tmp_path, *extra):
    doc = tmp_path / "results.md"
    doc.write_text(DOC)
    rc = results_md.main(["--results", str(tmp_path / "results"), "--doc", str(doc), "--date", "2026-12-01", *extra])
    assert rc == 0
    return doc.read_text()


def test_table_rows_come_from_summary_csv(tmp_path):
    _summary(tmp_path)
    text = _run(tmp_path)
    rows = [line for line in text.splitlines() if line.startswith("| resnet18 |")]
    assert rows == [
        "| resnet18 | fp32 | pytorch | 0.975 [0.953, 0.987] | 42.73 | 13.5 |  |",
        "| resnet18 | ptq-x86 | pytorch | 0.978 [0.957, 0.989] | 10.79 | 3.74 | no significant change; **recommended** |",
        "| resnet18 | dyn-int8 | pytorch | 0.975 [0.953, 0.987] | 42.71 | 15.8 | no significant change; compressed but not faster (speedup < 1.05x) |",
    ]
    assert f"CPU: {CPU} (ISA: {ISA})" in text
    assert f"Date: 2026-12-01. Command: `{results_md.COMMAND}`." in text
    assert "old generated text" not in text


def test_text_outside_the_markers_is_untouched(tmp_path):
    _summary(tmp_path)
    text = _run(tmp_path)
    before, after = DOC.split(results_md.BEGIN)[0], DOC.split(results_md.END)[1]
    assert text.startswith(before + results_md.BEGIN + "\n")
    assert text.endswith(results_md.END + after)
    again = tmp_path / "results.md"
    results_md.main(["--results", str(tmp_path / "results"), "--doc", str(again), "--date", "2026-12-01"])
    assert again.read_text() == text, "regenerating is idempotent"


def test_one_latency_column_from_summary_csv(tmp_path):
    """summary.csv's latency is already benchmark_artifact's batch-1 p50: no second, disagreeing column."""
    _summary(tmp_path)
    text = _run(tmp_path)
    assert "p50 alone" not in text and "`benchmark_artifact` job" in text
    assert "| resnet18 | ptq-x86 | pytorch | 0.978 [0.957, 0.989] | 10.79 | 3.74 | no significant change; **recommended** |" in text


def test_missing_markers_fail_without_writing(tmp_path):
    with pytest.raises(ValueError, match="results:begin"):
        results_md.replace_between("# no markers here\n", "table\n")
