"""Intervals, paired tests, the recommendation rule and seed repeats, against hand-computed values."""

import math

import pandas as pd
import pytest

from compressflow import files, repeats, report, stats
from compressflow.errors import CompressflowError


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)],
)
def test_wilson_matches_newcombe_1998_table(k, n, lo, hi):
    """Newcombe (1998), Statist. Med. 17:857, Table II, method 3 (score interval without continuity correction)."""
    got = stats.wilson(k, n)
    assert got == pytest.approx((lo, hi), abs=5e-5)
    assert got[0] <= k / n <= got[1]


def test_wilson_contains_the_point_and_narrows_with_confidence():
    for k in (0, 1, 180, 359, 360):
        lo, hi = stats.wilson(k, 360)
        assert 0 <= lo <= k / 360 <= hi <= 1
        lo90, hi90 = stats.wilson(k, 360, 0.90)
        assert lo <= lo90 and hi90 <= hi
    assert all(math.isnan(x) for x in stats.wilson(1, 0))


def test_mcnemar_exact_by_hand():
    # b=1, c=7: P[X <= 1] for X ~ Bin(8, 1/2) = (1 + 8) / 256; two-sided doubles it.
    assert stats.mcnemar_exact(1, 7) == 18 / 256
    assert stats.mcnemar_exact(7, 1) == 18 / 256
    assert stats.mcnemar_exact(0, 6) == 2 / 64  # 0.03125: significant at 0.05
    assert stats.mcnemar_exact(0, 5) == 2 / 32  # 0.0625: not
    assert stats.mcnemar_exact(5, 5) == 1.0 and stats.mcnemar_exact(0, 0) == 1.0
    assert stats.verdict(2 / 64, 0, 6, 0.05) == "significant gain"
    assert stats.verdict(2 / 64, 6, 0, 0.05) == "significant drop"
    assert stats.verdict(2 / 32, 5, 0, 0.05) == "no significant change"


def test_discordant_counts_and_length_check():
    assert stats.discordant("1100", "1010") == (1, 1, 1, 1)
    assert stats.discordant("111", "111") == (3, 0, 0, 0)
    with pytest.raises(CompressflowError, match="differ in length"):
        stats.discordant("11", "111")


def test_paired_difference_interval():
    # 360 images, parent right on 350, artifact on 344: b=8 (parent only), c=2 (artifact only).
    lo, hi = stats.paired_difference_interval(342, 8, 2, 8)
    assert lo < 6 / 360 < hi and lo < 0.0  # (b - c) / n inside; McNemar p = 0.109 agrees: zero not excluded
    one_lo, one_hi = stats.paired_difference_interval(342, 8, 2, 8, sided=1)
    assert lo < one_lo < 6 / 360 < one_hi < hi  # a one-sided 95% bound is the two-sided 90% limit
    # mirrored table, mirrored interval
    assert stats.paired_difference_interval(342, 2, 8, 8) == pytest.approx((-hi, -lo))
    # identical predictions: the point is 0 but the bound is not (the discordance rate is estimated, not known)
    lo0, hi0 = stats.paired_difference_interval(350, 0, 0, 10, sided=1)
    assert lo0 < 0 < hi0 < 0.01
    # a clear drop excludes zero
    assert stats.paired_difference_interval(300, 40, 2, 18)[0] > 0


def test_bootstrap_is_seeded_and_byte_reproducible():
    calls = [1.0, 1.2, 0.9, 5.0, 1.1, 1.05, 0.95, 1.3]
    a = stats.bootstrap_percentile(calls, 50, samples=500, seed=0)
    b = stats.bootstrap_percentile(calls, 50, samples=500, seed=0)
    assert repr(a) == repr(b)
    assert a != stats.bootstrap_percentile(calls, 50, samples=500, seed=1)
    assert a[0] <= 1.075 <= a[1]  # np.percentile(calls, 50)
    assert all(math.isnan(x) for x in stats.bootstrap_percentile([], 50, samples=10, seed=0))


def _row(tmp_path, name, top1_correct, *, runtime="pytorch", calls=(1.0, 1.1, 1.2), **extra):
    n = len(top1_correct)
    m = {
        "runtime": runtime,
        "top1": top1_correct.count("1") / n,
        "top5": 1.0,
        "n_test": n,
        "latency_ms_p50": float(pd.Series(calls).median()),
        "latency_ms_calls": list(calls),
        "correct_top1": top1_correct,
        "latency_input": 32,
        "size_mb": 1.0,
        **extra,
    }
    path = tmp_path / f"{name.replace('/', '_')}-{runtime}.json"
    files.write_json(m, path)
    return path


def _entries(tmp_path):
    n = 360
    base = "1" * 350 + "0" * 10  # top-1 0.9722
    same = base  # e.g. a fused model: identical predictions
    small = "0" * 3 + "1" * 347 + "0" * 10  # 3 fewer right: drop 0.0083 (inside a 1 pt budget as a point)
    gain = base[:350] + "1" * 8 + "00"  # 8 more right than the parent: b=0, c=8
    assert len(small) == len(gain) == n
    rows = [
        ("fp32", "", "train", base, (10.0, 10.5, 11.0)),
        ("fused", "fp32", "fuse", same, (8.0, 8.1, 8.2)),
        ("q", "fp32", "ptq", small, (2.0, 2.1, 2.2)),
        ("g", "fp32", "distill", gain, (9.0, 9.0, 9.1)),
    ]
    return [
        {"model": "m", "variant": v, "parent": p, "technique": t, "metrics_path": _row(tmp_path, v, c, calls=calls)}
        for v, p, t, c, calls in rows
    ]


def test_summary_has_intervals_paired_tests_and_verdicts(tmp_path):
    df = report.summarize(_entries(tmp_path), 1.05, 0.01).set_index("variant")
    assert (df.top1_lo <= df.top1).all() and (df.top1 <= df.top1_hi).all()
    assert (df.latency_ms_p50_lo <= df.latency_ms_p50).all() and (df.latency_ms_p50 <= df.latency_ms_p50_hi).all()
    assert df.loc["fp32", "top1_lo"] == pytest.approx(stats.wilson(350, 360)[0])
    assert df.loc["q", ["b_parent_only", "c_artifact_only"]].tolist() == [3, 0]
    assert df.loc["q", "mcnemar_p"] == 0.25 and df.loc["q", "verdict_vs_parent"] == "no significant change"
    assert df.loc["g", "mcnemar_p"] == 2 / 256 and df.loc["g", "verdict_vs_parent"] == "significant gain"
    assert df.loc["fused", "mcnemar_p"] == 1.0 and df.loc["fp32", "verdict_vs_parent"] == ""
    assert df.loc["q", "top1_drop_vs_fp32_ub"] == pytest.approx(stats.paired_difference_interval(347, 3, 0, 10, sided=1)[1])
    assert df.loc["q", "top1_drop_vs_fp32_ub"] > 0.01 > df.loc["q", "top1_drop_vs_fp32"]


def test_recommendation_rule_bound_vs_point(tmp_path):
    """q drops 0.8 pt (within a 1 pt budget) but could drop more: the bound rule picks the fused model, point picks q."""
    entries = _entries(tmp_path)
    summary = report.summarize(entries, 1.05, 0.01)
    bound = summary.set_index("variant")
    point = report.summarize(entries, 1.05, 0.01, options={"recommend": "point"}).set_index("variant")
    assert bound.index[bound.recommended.astype(bool)].tolist() == ["fused"]
    assert point.index[point.recommended.astype(bool)].tolist() == ["q"]
    report.write(summary, tmp_path / "s.csv", tmp_path / "s.md")
    md = (tmp_path / "s.md").read_text()
    assert "## Statistics" in md and "Recommended (rule `bound`)" in md and "one-sided 95% upper bound" in md
    assert "0.9722 [0.9496, 0.9848]" in md  # Wilson 350/360
    assert "| 3/0 " in md and "significant gain" in md


def test_report_bytes_are_reproducible(tmp_path):
    entries = _entries(tmp_path)
    outs = []
    for i in range(2):
        df = report.summarize(entries, 1.05, 0.01, seed=7)
        report.write(df, tmp_path / f"s{i}.csv", tmp_path / f"s{i}.md")
        report.latex_table(df, tmp_path / f"t{i}.tex")
        outs.append([(tmp_path / f"{n}{i}.{e}").read_bytes() for n, e in (("s", "csv"), ("s", "md"), ("t", "tex"))])
    assert outs[0] == outs[1]


def test_latex_interval_styles():
    assert report.latex_interval(0.953, 0.929, 0.971, ".3f", "brackets") == "0.953 [0.929, 0.971]"
    assert report.latex_interval(0.953, 0.929, 0.971, ".3f", "pm") == "$0.953^{+0.018}_{-0.024}$"
    assert report.latex_interval(0.950, 0.930, 0.970, ".3f", "pm") == r"$0.950 \pm 0.020$"
    assert report.latex_interval(0.953, 0.929, 0.971, ".3f", "none") == "0.953"
    assert report.latex_interval(float("nan"), 0, 1, ".3f", "pm") == "--"


def test_repeats_expand_names_and_seeds():
    variants = {"p": {"from": "fp32", "technique": "prune_l1", "repeats": 3}, "q": {"from": "p", "technique": "ptq"}}
    out, seeds = repeats.expand(variants, 5)
    assert list(out) == ["p", "p@seed6", "p@seed7", "q"]
    assert seeds == {"p": ("p", 5), "p@seed6": ("p", 6), "p@seed7": ("p", 7)}
    assert out["q"]["from"] == "p"  # children build on repeat 0, which is the unrepeated artifact
    assert repeats.expand({"p": {"from": "fp32", "technique": "qat", "repeats": 1}}, 0) == (
        {"p": {"from": "fp32", "technique": "qat", "repeats": 1}},
        {},
    )


def test_seed_aggregate_row(tmp_path):
    n = 360
    entries = _entries(tmp_path)[:1]
    for seed, k in ((0, 340), (1, 344), (2, 348)):
        name = "kd" if seed == 0 else f"kd@seed{seed}"
        path = _row(tmp_path, name, "1" * k + "0" * (n - k))
        entries.append(
            {"model": "m", "variant": name, "parent": "fp32", "technique": "distill", "metrics_path": path, "repeat_of": "kd", "seed": seed}
        )
    df = report.summarize(entries, 1.05, 0.01)
    agg = df[df.variant == "kd (mean of 3 seeds)"].iloc[0]
    assert agg.top1 == pytest.approx(344 / 360) and agg.top1_std == pytest.approx(4 / 360)  # sample std of 340, 344, 348
    assert agg.top1_per_seed == "seed 0: 0.9444; seed 1: 0.9556; seed 2: 0.9667"
    assert not agg.recommended and agg.n_seeds == 3
    assert set(df.variant) == {"fp32", "kd", "kd@seed1", "kd@seed2", "kd (mean of 3 seeds)"}
    assert df[df.variant == "kd@seed2"].seed.iloc[0] == 2
    report.write(df, tmp_path / "s.csv", tmp_path / "s.md")
    md = (tmp_path / "s.md").read_text()
    assert "0.9556 ± 0.0111 (3 seeds)" in md and "## Seeds" in md
    report.latex_table(df, tmp_path / "t.tex")
    assert r"$0.956 \pm 0.011$ (3 seeds)" in (tmp_path / "t.tex").read_text()


def test_correct_top1_string():
    import torch

    from compressflow import evaluate as ev

    logits = torch.tensor([[2.0, 1.0], [0.0, 1.0], [3.0, 0.0]])
    assert ev.correct_top1(logits, torch.tensor([0, 0, 0])) == "101"
