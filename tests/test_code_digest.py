"""A change to the library reruns exactly the jobs whose reachable code changed (compressflow/codedigest.py)."""

import json
import shutil

import pytest

from compressflow import codedigest
from tests.conftest import REPO
from tests.test_reproducibility import _planned_jobs

LIB = codedigest.Library(REPO)
PTQ_VARIANTS = {"ptq-x86", "ptq-x86-bc", "fused/ptq-minmax", "prune-ch50/ptq-x86"}
SUMMARY_RULES = {"make_report", "collect_benchmarks", "all"}


def _closure(script):
    return set(codedigest.closure(REPO / "scripts" / f"{script}.py", LIB))


# ---------------------------------------------------------------- unit: normalisation and closures


def test_comments_docstrings_and_layout_do_not_count_but_behaviour_does():
    base = 'def f(a, b):\n    """Add."""\n    return a + b\n'
    cosmetic = "# a comment\ndef f(\n    a,\n    b,\n):  # trailing\n    '''Other words.'''\n\n    return (a + b)\n"
    assert codedigest.normalised(base) == codedigest.normalised(cosmetic)
    assert codedigest.normalised(base) != codedigest.normalised("def f(a, b):\n    return a - b\n")
    # A docstring-only body still parses to a function (it becomes `pass`), distinct from one that does work.
    assert codedigest.normalised('def f():\n    """Only."""\n') != codedigest.normalised("def f():\n    return 1\n")


def test_closures_follow_imports_packages_and_rebuilder_strings():
    ptq, qat, train = _closure("ptq"), _closure("qat"), _closure("train_baseline")
    assert "compressflow.quantize.static" in ptq and "compressflow.quantize.static" not in qat
    assert "compressflow.quantize.qat" in qat and "compressflow.quantize.qat" not in ptq
    # artifacts.load_model -> recipes, whose REBUILDERS name "compressflow.quantize.rebuild:rebuild" as a string.
    assert {"compressflow.files", "compressflow.recipes", "compressflow.quantize.rebuild", "compressflow.quantize"} <= train
    assert "compressflow.quantize.static" not in train and "compressflow.quantize.mixed" not in train
    # Every script reaches the atomic writer and the package's own __init__.
    for script in (REPO / "scripts").glob("*.py"):
        assert {"compressflow", "compressflow.files", "compressflow.smk"} <= _closure(script.stem), script.name


def test_relative_imports_resolve(tmp_path):
    pkg = tmp_path / "compressflow" / "sub"
    pkg.mkdir(parents=True)
    (tmp_path / "compressflow" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\nfrom ..top import x\n")
    (pkg / "b.py").write_text("")
    (tmp_path / "compressflow" / "top.py").write_text("x = 1\n")
    script = tmp_path / "s.py"
    script.write_text("from compressflow.sub import a\n")
    got = codedigest.closure(script, codedigest.Library(tmp_path))
    assert set(got) == {"compressflow", "compressflow.sub", "compressflow.sub.a", "compressflow.sub.b", "compressflow.top"}


def test_provenance_records_the_code_digest(tiny_run):
    rec = json.loads((tiny_run / "results" / "resnet18" / "ptq-x86" / "provenance.json").read_text())
    assert rec["code_digest"] == codedigest.script_digest(REPO / "scripts" / "ptq.py", REPO)
    assert rec["params"]["code"] == rec["code_digest"] and isinstance(rec["git_dirty"], bool)
    assert rec["git_commit"].endswith("+dirty") == rec["git_dirty"]


# ---------------------------------------------------------------- integration: exact job lists on a finished tiny run


def _repo_copy(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(REPO, repo, ignore=shutil.ignore_patterns(".venv", "results", "logs", ".snakemake", ".git", "__pycache__"))
    return repo


def _edit(path, old, new):
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} not found once in {path}"
    path.write_text(text.replace(old, new))


def test_static_ptq_change_reruns_exactly_the_ptq_variants(tiny_copy, tmp_path):
    repo = _repo_copy(tmp_path)
    # bias_correct is used only by the ptq step; this line changes the AST (behaviour), not just formatting.
    _edit(
        repo / "compressflow" / "quantize" / "static.py",
        "    calib_size = check_calib_size(split, calib_size)\n    names = ",
        "    calib_size = check_calib_size(split, calib_size)\n    batch_size = int(batch_size)\n    names = ",
    )
    jobs = _planned_jobs(tiny_copy, repo=repo)
    assert {("ptq", "resnet18", v) for v in PTQ_VARIANTS} <= jobs
    assert {("ptq_calibrate", "resnet18", v) for v in PTQ_VARIANTS} <= jobs
    assert {("evaluate", "resnet18", v) for v in PTQ_VARIANTS} <= jobs
    assert {variant for _, _, variant in jobs} == PTQ_VARIANTS | {""}
    assert {rule for rule, _, variant in jobs if variant == ""} == SUMMARY_RULES
    for rule in ("prepare_data", "train_baseline", "prune_channels", "prune_l1", "distill", "qat"):
        assert not any(j[0] == rule for j in jobs), rule


def test_change_in_a_module_every_step_uses_reruns_everything(tiny_copy, tmp_path):
    repo = _repo_copy(tmp_path)
    _edit(repo / "compressflow" / "files.py", "def write_json(", "_WRITES = 0\n\n\ndef write_json(")
    jobs = _planned_jobs(tiny_copy, repo=repo)
    rules = {rule for rule, _, _ in jobs}
    assert {"prepare_data", "train_baseline", "fuse", "ptq", "prune_channels", "distill", "qat"} <= rules
    assert {"export_onnx", "evaluate_onnxruntime", "evaluate_openvino", "benchmark_artifact", "record_environment"} <= rules


@pytest.mark.parametrize(
    "edit",
    [
        # comments, a docstring and the layout of a statement in the module every step uses
        ("compressflow/files.py", "def write_json(", "# A comment that changes nothing.\ndef write_json(  # here too\n"),
        ("compressflow/quantize/static.py", '"""Empirical bias correction:', '"""Reworded: empirical bias correction:'),
        (
            "compressflow/quantize/static.py",
            "calib_size = check_calib_size(split, calib_size)\n",
            "calib_size = check_calib_size(\n        split, calib_size\n    )\n",
        ),
        # outside the library
        ("benchmarks/composition.py", "import ", "import sys  # noqa: F401\nimport "),
        ("tests/test_library.py", "import ", "import sys  # noqa: F401\nimport "),
    ],
    ids=["io-comment", "docstring", "formatting", "benchmarks", "tests"],
)
def test_cosmetic_or_outside_change_plans_nothing(tiny_copy, tmp_path, edit):
    repo = _repo_copy(tmp_path)
    rel, old, new = edit
    path = repo / rel
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    assert _planned_jobs(tiny_copy, repo=repo) == set()
