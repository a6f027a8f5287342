"""docs/support.md is the support matrix the benchmark wrote: every arch x technique/runtime, as in its CSV."""

import math

import pytest

from benchmarks import support_matrix as sm
from tests.conftest import REPO

CSV = REPO / "benchmarks" / "support_matrix.csv"
DOC = REPO / "docs" / "support.md"


def test_doc_lists_every_arch_and_technique_as_the_csv_says():
    rows = sm.read_csv(CSV)
    cells = {(r["arch"], r["cell"]) for r in rows}
    assert cells == {(a, c) for a in [*sm.ARCHS, *sm.MODULES] for c in sm.CELLS}, "rerun benchmarks/support_matrix.py --doc docs/support.md"
    assert len(rows) == len(cells)
    assert DOC.read_text() == sm.doc(rows), "docs/support.md does not match the CSV: regenerate it"
    for r in rows:
        assert r["status"] in ("ok", "unsupported"), f"{r['arch']} x {r['cell']} is a bug, not a limitation: {r['reason']}"
        if r["status"] == "unsupported":
            assert " does not support " in r["reason"] and "; fix: " in r["reason"], r
        else:
            assert r["metric"] and math.isfinite(float(r["value"])) or r["value"] == "inf", r


def test_doc_cell_says_unsupported_with_its_reason():
    row = {"status": "unsupported", "reason": "fuse does not support X (no BN): why; fix: drop it", "metric": "", "value": ""}
    assert sm.cell_text(row) == "unsupported: fuse does not support X (no BN): why; fix: drop it"
    assert sm.cell_text({"status": "ok", "metric": "sqnr_db", "value": "31.2", "reason": ""}) == "ok (sqnr_db 31.2)"


@pytest.mark.slow
def test_regenerated_subset_matches_the_csv():
    """The committed figures are what the library gives now (a changed step shows up here)."""
    want = {(r["arch"], r["cell"]): r for r in sm.read_csv(CSV)}
    for row in sm.matrix(["mobilenet_v3_small", "convnext_tiny"], ["fuse", "ptq", "prune_channels"]):
        old = want[(row["arch"], row["cell"])]
        assert row["status"] == old["status"] and row["reason"] == old["reason"], (row, old)
        if row["status"] == "ok":
            new_v, old_v = float(row["value"]), float(old["value"])
            if row["metric"] == "rel_max_abs_diff":  # float rounding: its size moves with the thread count, its bound does not
                assert new_v < 1e-3 and old_v < 1e-3, (row, old)
            else:  # sqnr_db, params_ratio
                assert math.isclose(new_v, old_v, rel_tol=0.05, abs_tol=0.5 if row["metric"] == "sqnr_db" else 1e-3), (row, old)
