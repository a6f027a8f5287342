"""A --configfile is the whole config: run from the repository root, nothing of config/config.yaml (the tour) is merged in."""

import re
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO

WORKFLOW = ("Snakefile", "rules", "scripts", "compressflow", "config", "envs", "report", "profiles")


def _repo_copy(tmp_path):
    """The workflow's files in a fresh folder, run from there as a user runs from the repository root."""
    root = tmp_path / "repo"
    root.mkdir()
    for name in WORKFLOW:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, root / name)
    return root


def _dry_run(root, *configfiles):
    cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--profile", "profiles/default"]
    if configfiles:
        cmd += ["--configfile", *map(str, configfiles)]
    return subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300)


def _plan(root, *configfiles):
    """{rule: job count} of a dry run in ``root`` (its working directory) with these --configfile values."""
    proc = _dry_run(root, *configfiles)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    stats = proc.stdout.split("Job stats:")[1].split("\n\n")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M) if m[1] != "total"}


ONE_MODEL = {
    "dataset": {"kind": "digits", "input_size": 16},
    "models": {"resnet18": {"arch": "resnet18", "train": {"epochs": 1, "lr": 0.05, "batch_size": 64}}},
    "variants": {
        "fused": {"from": "fp32", "technique": "fuse"},
        "dyn-int8": {"from": "fp32", "technique": "dynamic"},
    },
    "deploy": {"variants": [], "tensorrt": {"mode": "off"}},
}


def test_a_users_config_from_the_repository_root_is_the_whole_config(tmp_path):
    root = _repo_copy(tmp_path)
    mine = tmp_path / "my.yaml"
    mine.write_text(yaml.safe_dump(ONE_MODEL))
    jobs = _plan(root, mine)
    # One model, fp32 + two variants: nothing of the tour's nine variants or its deployed rows.
    assert jobs == {
        "all": 1,
        "prepare_data": 1,
        "train_baseline": 1,
        "fuse": 1,
        "dynamic": 1,
        "layer_error": 1,
        "evaluate": 3,
        "benchmark_artifact": 3,
        "collect_benchmarks": 1,
        "make_report": 1,
        "record_environment": 1,
    }, jobs


def test_config_files_overlay_in_the_order_given_and_the_tour_only_without_one(tmp_path):
    root = _repo_copy(tmp_path)
    mine = tmp_path / "my.yaml"
    mine.write_text(yaml.safe_dump(ONE_MODEL))
    more = tmp_path / "more.yaml"
    more.write_text(
        yaml.safe_dump({"variants": {"prune-l1-50": {"from": "fp32", "technique": "prune_l1", "amount": 0.5, "finetune_epochs": 1}}})
    )
    jobs = _plan(root, mine, more)
    assert jobs["prune_l1"] == 1 and jobs["fuse"] == 1 and jobs["evaluate"] == 4 and "prune_channels" not in jobs, jobs
    tour = _plan(root)
    assert tour["prune_channels"] == 1 and tour["distill"] == 1 and tour["evaluate"] == 10, tour
    from compressflow import hostcheck

    if hostcheck.tensorrt_skip_reason():  # TensorRT rows are written as skipped, without a job
        assert not any(rule.startswith("build_trt") or rule == "evaluate_tensorrt" for rule in tour), tour


def test_the_tour_has_every_technique_family_and_runtime():
    """config/config.yaml (what `make run` builds): each technique family of the seeds and each runtime at least once."""
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    techniques = {v["technique"] for v in cfg["variants"].values()}
    assert {"fuse", "dynamic", "ptq", "qat", "mixed", "prune_l1", "prune_channels", "distill"} <= techniques, techniques
    assert any(v.get("bias_correction") for v in cfg["variants"].values() if v["technique"] == "ptq")
    chained = [
        v
        for v in cfg["variants"].values()
        if v["technique"] == "ptq" and cfg["variants"].get(v["from"], {}).get("technique") == "prune_channels"
    ]
    assert chained, "no prune -> INT8 chain"
    deploy = cfg["deploy"]
    assert deploy["variants"] and deploy["onnxruntime"]["enabled"] and deploy["onnxruntime"]["int8"]["enabled"]
    assert deploy["openvino"]["enabled"] and deploy["openvino"]["int8"]["enabled"]
    assert deploy["pytorch"]["compile"] or deploy["pytorch"]["aoti"], "no PyTorch 2 row"
    assert deploy["tensorrt"]["mode"] == "auto"  # written as skipped, without a job, where there is no GPU


def test_yaml_syntax_error_in_the_tour_names_file_and_line(tmp_path):
    """config/config.yaml is read by the workflow (a --configfile is parsed by Snakemake itself, before the workflow)."""
    root = _repo_copy(tmp_path)
    (root / "config" / "config.yaml").write_text("seed: 0\ndataset:\n  kind: digits\n   input_size: 16\n")
    proc = _dry_run(root)
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("compressflow")]
    assert proc.returncode != 0 and len(lines) == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "config/config.yaml' line 4" in lines[0] and "is not valid YAML" in lines[0] and "fix:" in lines[0], lines[0]


@pytest.mark.parametrize(
    "variants, message",
    [
        (
            {"d": {"from": "fp32", "technique": "dynamic", "models": []}},
            r"variants.d.models is an empty list.*fix: list the models it is for \(r\)",
        ),
        (
            {"q": {"from": "fp32", "technique": "dynamic"}, "qq": {"from": "q", "technique": "dynamic"}},
            r"variants.qq \(dynamic\) is built from 'q', which is already INT8 \(dynamic\)",
        ),
        (
            {"q": {"from": "fp32", "technique": "ptq"}, "kd": {"from": "fp32", "technique": "distill", "student_from": "q"}},
            r"variants.kd.student_from names 'q', which is INT8 \(ptq\)",
        ),
        (
            {"kd": {"from": "fp32", "technique": "distill", "student_from": "kd"}},
            r"variants.kd depends on itself \(variants.kd.student_from -> 'kd'\)",
        ),
        (
            {
                "p": {"from": "kd", "technique": "prune_l1", "amount": 0.5},
                "kd": {"from": "fp32", "technique": "distill", "student_from": "p"},
            },
            r"depends on itself \(variants.\w+.(from|student_from) -> variants.\w+.(from|student_from) -> '\w+'\)",
        ),
    ],
)
def test_a_variant_graph_that_cannot_build_is_one_line_naming_the_key(variants, message):
    """Each was a job failure with the wrong cause, a CyclicGraphException, or a variant silently dropped."""
    from compressflow import config as cfcheck
    from compressflow.errors import CompressflowError

    cfg = {"models": {"r": {"arch": "resnet18"}}, "variants": variants}
    with pytest.raises(CompressflowError, match=message):
        cfcheck.check_variants(cfg)
