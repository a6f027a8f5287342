"""Sweeps as config: a variant template with list-valued knobs expands into ordinary, readable variants."""

import pandas as pd
import pytest
import yaml

from compressflow import sweeps
from compressflow.errors import CompressflowError
from tests.conftest import REPO, assert_picture, snakemake
from tests.test_reproducibility import _planned_jobs

PRUNE = {"from": "fp32", "technique": "prune_channels", "ratio": [0.3, 0.5, 0.7], "finetune_epochs": 0}


def test_points_are_ordinary_variants_with_readable_names():
    variants, meta = sweeps.expand(
        {"prune-ch": PRUNE, "ptq-cal": {"from": "fp32", "technique": "ptq", "observer": ["minmax", "histogram"], "calib_size": [32, 64]}},
        {"fused": {"from": "fp32", "technique": "fuse"}},
    )
    assert list(variants) == [
        "fused",
        "prune-ch@ratio=0.3",
        "prune-ch@ratio=0.5",
        "prune-ch@ratio=0.7",
        "ptq-cal@observer=minmax,calib_size=32",
        "ptq-cal@observer=minmax,calib_size=64",
        "ptq-cal@observer=histogram,calib_size=32",
        "ptq-cal@observer=histogram,calib_size=64",
    ]
    assert variants["prune-ch@ratio=0.5"] == {"from": "fp32", "technique": "prune_channels", "ratio": 0.5, "finetune_epochs": 0}
    assert meta["ptq-cal"]["axes"] == ["observer", "calib_size"]
    assert meta["prune-ch"]["points"]["prune-ch@ratio=0.7"] == {"ratio": 0.7}
    # a list-typed knob is swept by a list of lists; a plain list of it is its value
    one, _ = sweeps.expand({"s": {**PRUNE, "ratio": [0.5], "ignored_layers": ["fc"]}}, {})
    assert one["s@ratio=0.5"]["ignored_layers"] == ["fc"]


@pytest.mark.parametrize(
    "sweep, variants, message",
    [
        ({**PRUNE, "ratio": []}, {}, r"sweeps.s.ratio is an empty list"),
        ({**PRUNE, "ratio": [0.5, 0.5]}, {}, r"sweeps.s.ratio lists a value twice"),
        ({**PRUNE, "from": ["fp32", "fused"]}, {}, r"sweeps.s.from is a list, but a sweep cannot vary its from"),
        ({**PRUNE, "ratio": 0.5}, {}, r"sweeps.s has no knob with a list of values"),
        (
            {**PRUNE, "ratio": [0.5]},
            {"s@ratio=0.5": {"from": "fp32", "technique": "fuse"}},
            r"its point 's@ratio=0.5' has the name of another",
        ),
        ({**PRUNE, "ratio": [i / 100 for i in range(1, 66)]}, {}, r"sweeps.s has 65 points \(65\), over the limit of 64"),
        ({"technique": "ptq", "calib_size": [8]}, {}, r"sweeps.s needs 'from' and 'technique'"),
    ],
)
def test_a_bad_sweep_is_one_line_naming_its_key(sweep, variants, message):
    with pytest.raises(CompressflowError, match=message):
        sweeps.expand({"s": sweep}, variants)


def test_an_unknown_knob_names_the_sweep_and_its_point(tmp_path):
    cfg = yaml.safe_load((REPO / "tests" / "tiny_config.yaml").read_text())
    cfg["sweeps"] = {"prune-ch": {**PRUNE, "raito": [0.3, 0.5]}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = snakemake(tmp_path / "run", "-n", "--cores", "1", config=path, check=False)
    (line,) = [x for x in (out.stdout + out.stderr).splitlines() if x.startswith("compressflow config error")]
    assert "config key 'sweeps.prune-ch (point 'prune-ch@" in line and "unknown key(s) ['raito']" in line, line


def _with_sweep(tmp_path, ratios, name="c.yaml"):
    cfg = yaml.safe_load((REPO / "tests" / "tiny_config.yaml").read_text())
    cfg["sweeps"] = {"prune-ch": {**PRUNE, "ratio": ratios}}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_a_three_value_sweep_builds_three_variants_and_a_fourth_value_plans_only_its_jobs(tiny_copy, tmp_path):
    snakemake(tiny_copy, "--cores", "2", config=_with_sweep(tmp_path, [0.3, 0.5, 0.7]))
    table = pd.read_csv(tiny_copy / "results/report/sweeps/prune-ch.csv")
    assert list(table.variant) == ["prune-ch@ratio=0.3", "prune-ch@ratio=0.5", "prune-ch@ratio=0.7"]
    assert list(table.ratio) == [0.3, 0.5, 0.7] and (table.top1 > 0).all() and (table.latency_ms_p50 > 0).all()
    assert table.size_mb.is_monotonic_decreasing  # a higher ratio prunes more channels
    assert_picture(tiny_copy / "results/report/sweeps/prune-ch.png")
    assert (tiny_copy / "results/report/sweeps/prune-ch.tex").read_text().startswith("\\begin{tabular}")
    jobs = _planned_jobs(tiny_copy, _with_sweep(tmp_path, [0.3, 0.5, 0.7, 0.9], "four.yaml"))
    assert {v for _, _, v in jobs if v} == {"prune-ch@ratio=0.9"}, jobs
    assert {r for r, _, v in jobs if not v} <= {"make_report", "collect_benchmarks", "sweep_report", "all"}, jobs
    # removing a value plans the report only and deletes nothing
    before = sorted(p.name for p in (tiny_copy / "results/resnet18").iterdir())
    jobs = _planned_jobs(tiny_copy, _with_sweep(tmp_path, [0.3, 0.5], "two.yaml"))
    assert {v for _, _, v in jobs if v} == set(), jobs
    assert sorted(p.name for p in (tiny_copy / "results/resnet18").iterdir()) == before
