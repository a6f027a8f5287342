"""Same inputs + same config => same bytes; a change reruns exactly what it touches."""

import re
import shutil

import yaml

from compressflow import provenance
from tests.conftest import REPO, snakemake

# Files that hold wall-clock timings (or hash a file that does); everything else must be byte-identical.
TIMING_FILES = re.compile(
    r"(metrics\.json|eval_provenance\.json|report/(summary\.(csv|md)|table\.tex|pareto\.(png|pdf)|benchmark\.(csv|md))"
    r"|results/benchmarks/.*\.(tsv|json))$"
)


def _hashes(root):
    return {str(p.relative_to(root)): provenance.sha256(p) for p in sorted((root / "results").rglob("*")) if p.is_file()}


def test_two_clean_runs_are_byte_identical(tiny_run, clean_run):
    """Every artifact a second clean run builds has the first run's bytes.

    The second run (``clean_run``, started in the background as the session begins) stops before the timing
    jobs (``--omit-from benchmark_artifact``, and so the report): their files hold timings, which no two runs
    share, and they took a third of this test's time. The report, given the same inputs, is compared in the
    next test.
    """
    first, second = _hashes(tiny_run), _hashes(clean_run)
    built = {k for k in first if not k.startswith(("results/report/", "results/benchmarks/"))}
    assert built <= second.keys() <= first.keys(), (built - second.keys(), second.keys() - first.keys())
    stable = [k for k in second if not TIMING_FILES.search(k)]
    for kind in ("model.pt", "test_logits.pt", "model.onnx", "model.xml", "layer_error.csv", "sensitivity.csv"):
        assert any(k.endswith(kind) for k in stable), kind
    differing = [k for k in stable if first[k] != second[k]]
    assert differing == []


def test_report_again_from_the_same_inputs_is_byte_identical(tiny_copy):
    """make_report rerun on unchanged metrics and benchmark files writes every report file with the same bytes."""

    def report():
        return {k: v for k, v in _hashes(tiny_copy).items() if k.startswith("results/report/")}

    before = report()
    snakemake(tiny_copy, "--cores", "1", "--forcerun", "make_report", "--allowed-rules", "make_report")
    after = report()
    assert len(before) >= 9 and before == after


def _planned_jobs(workdir, config=None, repo=REPO):
    """(rule, model, variant) of every job a dry run would execute."""
    out = snakemake(workdir, "-n", "--cores", "1", config=config, repo=repo)
    text = out.stdout + out.stderr
    jobs = set()
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", text):
        m = re.match(r"(?:local)?rule (\w+):", block.strip())
        if not m:
            continue
        w = re.search(r"wildcards: (.*)", block)
        wc = dict(kv.split("=", 1) for kv in w.group(1).split(", ")) if w else {}
        jobs.add((m.group(1), wc.get("model", ""), wc.get("variant", "")))
    return jobs


def test_changed_knob_reruns_exactly_its_subtree(tiny_copy, tmp_path):
    cfg = yaml.safe_load((REPO / "tests" / "tiny_config.yaml").read_text())
    cfg["variants"]["fused"]["tolerance"] = 2e-4
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(cfg))
    jobs = _planned_jobs(tiny_copy, changed)
    # fused, what is built from it (fused/ptq-minmax, its deploy targets, their benchmarks), and the summaries.
    assert {("fuse", "resnet18", "fused"), ("evaluate", "resnet18", "fused"), ("export_onnx", "resnet18", "fused")} <= jobs
    assert ("ptq_calibrate", "resnet18", "fused/ptq-minmax") in jobs and ("benchmark_artifact", "resnet18", "fused") in jobs
    outside = {j for j in jobs if j[2] not in ("fused", "") and not j[2].startswith("fused/")}
    assert outside == set()
    assert {rule for rule, _, variant in jobs if variant == ""} == {"make_report", "collect_benchmarks", "all"}


def test_changed_training_reruns_everything_downstream_but_not_data(tiny_copy, tmp_path):
    cfg = yaml.safe_load((REPO / "tests" / "tiny_config.yaml").read_text())
    cfg["models"]["resnet18"]["train"]["epochs"] = 4
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(cfg))
    jobs = _planned_jobs(tiny_copy, changed)
    assert ("train_baseline", "resnet18", "") in jobs and ("fuse", "resnet18", "fused") in jobs
    assert not any(rule == "prepare_data" for rule, _, _ in jobs)


def test_edited_script_reruns_the_rules_that_use_it(tiny_copy, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(REPO, repo, ignore=shutil.ignore_patterns(".venv", "results", "logs", ".snakemake", ".git", "__pycache__"))
    script = repo / "scripts" / "fuse.py"
    script.write_text(script.read_text() + "# edited\n")
    jobs = _planned_jobs(tiny_copy, repo=repo)
    assert ("fuse", "resnet18", "fused") in jobs and ("evaluate", "resnet18", "fused") in jobs
    assert ("train_baseline", "resnet18", "") not in jobs and ("evaluate", "resnet18", "fp32") not in jobs
