"""benchmarks/pipeline_time.py: one row per timed run, from the per-job benchmark files, with the code that ran."""

import csv
import json
import re

import pytest

from benchmarks import pipeline_time
from tests.conftest import REPO


def test_a_finished_run_gives_one_row_with_every_job(tiny_run, tmp_path):
    out = tmp_path / "pipeline_time.csv"
    config = REPO / "tests" / "tiny_config.yaml"
    for _ in range(2):
        pipeline_time.main(["--from-run", str(tiny_run), "--configfile", str(config), "--out", str(out)])
    rows = list(csv.DictReader(open(out, newline="")))
    assert len(rows) == 2 and list(rows[0]) == pipeline_time.FIELDS
    row = rows[0]
    tsvs = list((tiny_run / "results" / "benchmarks").rglob("*.tsv"))
    jobs = json.loads(row["jobs_by_rule"])
    assert int(row["jobs"]) == sum(jobs.values()) == len(tsvs) and jobs["make_report"] == 1
    assert float(row["wall_s"]) > 0 and row["config"] == "tests/tiny_config.yaml"
    assert abs(float(row["job_seconds"]) - sum(json.loads(row["job_seconds_by_rule"]).values())) < 0.1 * len(jobs)


def test_commit_names_the_code_and_says_when_it_was_edited(tmp_path):
    if (REPO / ".git").exists():
        assert re.fullmatch(r"[0-9a-f]{7}(\+dirty)?", pipeline_time.commit(REPO / "Snakefile"))
    assert pipeline_time.commit(tmp_path / "Snakefile") == "unknown"  # not a git checkout


def test_a_csv_with_other_columns_is_refused_not_rewritten(tmp_path):
    out = tmp_path / "old.csv"
    out.write_text("date,wall_s\n2026-12-01,1.0\n")
    with pytest.raises(SystemExit, match=r"old.csv has columns \['date', 'wall_s'\].*pass another --out"):
        pipeline_time.append(dict.fromkeys(pipeline_time.FIELDS, ""), out)
    assert out.read_text() == "date,wall_s\n2026-12-01,1.0\n"
