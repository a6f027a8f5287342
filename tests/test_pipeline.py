"""The real Snakefile on the tiny config: artifacts, metrics, provenance, no-op reruns, bad config."""

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from compressflow import artifacts, models, provenance
from tests.conftest import REPO, assert_picture, snakemake, write_config

REQUIRED = ["model", "variant", "runtime", "top1", "top5", "size_mb", "latency_ms_p50", "parent", "top1_agreement_vs_parent"]


def test_artifacts_metrics_and_report(tiny_run):
    for variant in ("fp32", "fused"):
        d = tiny_run / "results" / "resnet18" / variant
        for name in ("model.pt", "metrics.json", "provenance.json", "eval_provenance.json", "test_logits.pt"):
            assert (d / name).is_file(), d / name
        m = json.loads((d / "metrics.json").read_text())
        assert 0.6 < m["top1"] <= 1.0 and m["top1"] <= m["top5"]
        assert m["n_test"] == 360 and m["params"] > 11_000_000
        assert 30 < m["size_mb"] < 60 and "latency_ms_p50" not in m and m["cpu_model"]
    fused = json.loads((tiny_run / "results/resnet18/fused/metrics.json").read_text())
    assert fused["top1_agreement_vs_parent"] >= 0.997 and fused["max_abs_diff_vs_parent"] < 1e-3
    df = pd.read_csv(tiny_run / "results/report/summary.csv")
    assert set(REQUIRED) <= set(df.columns)
    eager = df[df.runtime == "pytorch"].set_index("variant")
    cfg = yaml.safe_load((REPO / "tests" / "tiny_config.yaml").read_text())
    assert set(eager.index) == {"fp32", *cfg["variants"]}
    assert eager.loc["fused", "parent"] == "fp32" and eager.loc["prune-ch50/ptq-x86", "parent"] == "prune-ch50"
    assert {"onnxruntime", "onnxruntime-int8", "openvino", "openvino-int8", "tensorrt-fp16"} <= set(df.runtime)
    rec = df[df.recommended == True]  # noqa: E712 (one per model, over every runtime)
    assert len(rec) == 1 and rec.top1_drop_vs_fp32_ub.iloc[0] <= 0.01  # the default rule: the one-sided bound
    timed = df[df.latency_ms_p50.notna() & (df.top1_drop_vs_fp32_ub <= 0.01)]
    assert rec.latency_ms_p50.iloc[0] == timed.latency_ms_p50.min()
    assert "| resnet18 | fused" in (tiny_run / "results/report/summary.md").read_text()
    tex = (tiny_run / "results/report/table.tex").read_text()
    assert "\\toprule" in tex and "\\bottomrule" in tex and "$\\star$" in tex
    assert (tiny_run / "results/report/pareto.pdf").read_bytes().startswith(b"%PDF")
    for name in ("pareto", "sensitivity", "layer_error"):
        assert_picture(tiny_run / f"results/report/{name}.png")
    env = (tiny_run / "results/provenance/environment.txt").read_text()
    assert f"torch=={torch.__version__.split('+')[0]}" in env or f"torch=={torch.__version__}" in env
    assert "dependencies:" in (tiny_run / "results/provenance/environment.yml").read_text()


def test_report_intervals_and_paired_verdicts(tiny_run):
    """Every measured row has its intervals and a verdict; b and c match a recount from the stored logits."""
    df = pd.read_csv(tiny_run / "results/report/summary.csv")
    measured = df[df.top1.notna()]
    assert len(measured) >= 15
    assert ((measured.top1_lo <= measured.top1) & (measured.top1 <= measured.top1_hi)).all()
    assert ((measured.top5_lo <= measured.top5) & (measured.top5 <= measured.top5_hi)).all()
    timed = df[df.latency_ms_p50.notna()]
    assert ((timed.latency_ms_p50_lo <= timed.latency_ms_p50) & (timed.latency_ms_p50 <= timed.latency_ms_p50_hi)).all()
    children = measured[measured.parent.notna()]
    verdicts = {"no significant change", "significant drop", "significant gain"}
    assert set(children.verdict_vs_parent) <= verdicts and children.mcnemar_p.between(0, 1).all()
    y = torch.load(tiny_run / "results/data/test.pt", weights_only=True)["y"]
    ok = {v: torch.load(tiny_run / f"results/resnet18/{v}/test_logits.pt", weights_only=True).argmax(1) == y for v in ("fp32", "ptq-x86")}
    row = df[(df.variant == "ptq-x86") & (df.runtime == "pytorch")].iloc[0]
    assert (row.b_parent_only, row.c_artifact_only) == (int((ok["fp32"] & ~ok["ptq-x86"]).sum()), int((~ok["fp32"] & ok["ptq-x86"]).sum()))
    md = (tiny_run / "results/report/summary.md").read_text()
    assert "## Statistics" in md and "Recommended (rule `bound`)" in md and "top1 [95% CI]" in md
    assert " [0." in (tiny_run / "results/report/table.tex").read_text()


def test_repeats_add_seeded_artifacts_only(tiny_copy, tmp_path):
    """repeats: 3 on a finished run schedules exactly two new seeds' artifacts; repeat 0 is the existing one."""
    cfg = write_config(tmp_path / "rep.yaml", **{"variants.prune-l1-50.repeats": 3})
    jobs = snakemake(tiny_copy, "-n", "--cores", "1", config=cfg).stdout
    assert "results/resnet18/prune-l1-50@seed1/model.pt" in jobs
    # rule all lists every artifact, so look for it as a job's output, not anywhere in the text.
    assert "results/resnet18/prune-l1-50@seed2/model.pt" in jobs and "output: results/resnet18/prune-l1-50/model.pt" not in jobs
    assert jobs.count("rule prune_l1:") == 2


def test_provenance_hashes_match_files(tiny_run):
    records = list((tiny_run / "results").rglob("*provenance.json"))
    assert len(records) >= 5
    for rec_path in records:
        rec = json.loads(rec_path.read_text())
        assert rec["versions"]["torch"] and rec["git_commit"] and "params" in rec and "seed" in rec
        for section in ("inputs", "outputs"):
            for entry in rec[section].values():
                path = Path(entry["path"])
                path = path if path.is_absolute() else tiny_run / path
                assert provenance.sha256(path) == entry["sha256"], (rec_path, path)
    rec = json.loads((tiny_run / "results/resnet18/fused/provenance.json").read_text())
    assert rec["inputs"]["model"]["path"] == "results/resnet18/fp32/model.pt" and rec["params"]["tolerance"] == 1e-4


def test_second_dry_run_has_nothing_to_do(tiny_run):
    out = snakemake(tiny_run, "-n", "--cores", "1")
    assert "Nothing to be done" in out.stdout + out.stderr


def test_lint_is_clean():
    out = snakemake(REPO, "--lint", "--cores", "1", check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_bad_config_stops_before_any_job_with_one_line(tiny_copy, tmp_path):
    before = {p: provenance.sha256(p) for p in (tiny_copy / "results").rglob("*") if p.is_file()}
    bad = write_config(tmp_path / "bad.yaml", **{"dataset.input_size": 2})
    out = snakemake(tiny_copy, "--cores", "1", config=bad, check=False)
    assert out.returncode != 0
    lines = [line for line in (out.stdout + out.stderr).splitlines() if "compressflow config error" in line]
    assert len(lines) == 1 and "dataset.input_size" in lines[0] and "minimum 8" in lines[0]
    assert before == {p: provenance.sha256(p) for p in (tiny_copy / "results").rglob("*") if p.is_file()}


def test_user_checkpoint_is_used_and_checked(tiny_copy, tmp_path):
    """A user's state dict replaces training; a wrong one fails with one line and touches nothing."""
    good = tmp_path / "mine.pt"
    model, _ = artifacts.load_model(tiny_copy / "results/resnet18/fp32/model.pt")
    torch.save(model.state_dict(), good)
    # Only one child variant: the point is the checkpoint path, not rebuilding every variant.
    small = {"models.resnet18.checkpoint": str(good), "variants": {"fused": {"from": "fp32", "technique": "fuse"}}, "deploy": {}}
    cfg = write_config(tmp_path / "ckpt.yaml", **small)
    snakemake(tiny_copy, "--cores", "2", config=cfg)
    hist = json.loads((tiny_copy / "results/resnet18/fp32/history.json").read_text())
    assert hist["history"] == [] and hist["checkpoint"] == str(good)
    ref = json.loads((tiny_copy / "results/resnet18/fused/metrics.json").read_text())
    assert ref["top1"] > 0.6
    # Other weights under the same path with an older mtime (cp -p, rsync -a, tar x): the checkpoint counts by content.
    original, st = good.read_bytes(), good.stat()
    torch.save(models.build("resnet18", 10).state_dict(), good)
    os.utime(good, ns=(st.st_atime_ns, st.st_mtime_ns - 10**10))
    plan = snakemake(tiny_copy, "-n", "--cores", "1", config=cfg).stdout
    assert "rule train_baseline:" in plan, plan[-2000:]
    good.write_bytes(original)
    os.utime(good, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert "Nothing to be done" in snakemake(tiny_copy, "-n", "--cores", "1", config=cfg).stdout

    before = {p: provenance.sha256(p) for p in (tiny_copy / "results").rglob("*") if p.is_file()}
    wrong = tmp_path / "wrong.pt"
    torch.save(models.build("resnet18", 5).state_dict(), wrong)
    cfg = write_config(tmp_path / "wrong.yaml", **{"models.resnet18.checkpoint": str(wrong)})
    out = snakemake(tiny_copy, "--cores", "1", config=cfg, check=False)
    assert out.returncode != 0
    lines = [line for line in (out.stdout + out.stderr).splitlines() if "compressflow config error" in line]
    assert len(lines) == 1 and "wrong.pt' was trained for 5 classes" in lines[0]
    assert before == {p: provenance.sha256(p) for p in (tiny_copy / "results").rglob("*") if p.is_file()}


def test_imagefolder_dataset_runs_end_to_end(tmp_path):
    from PIL import Image

    from compressflow import data

    x, y, _ = data.load_digits(12)
    root = tmp_path / "images"
    for i in range(200):
        d = root / f"digit{int(y[i])}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i].permute(1, 2, 0).numpy()).save(d / f"{i}.png")
    cfg = write_config(
        tmp_path / "if.yaml",
        **{
            "dataset.kind": "imagefolder",
            "dataset.root": str(root),
            "dataset.input_size": 12,
            "dataset.preprocess": {"preset": "imagenet", "resize": 14, "crop": 12},
            "models.resnet18.train.epochs": 1,
            "variants": {},
            "deploy": {},
        },
    )
    snakemake(tmp_path / "run", "--cores", "2", config=cfg)
    split = data.load_split(tmp_path / "run/results/data/test.pt")
    assert split["classes"][0] == "digit0" and split["x"].shape[1:] == (3, 12, 12)
    assert len(split["y"]) == 40
    df = pd.read_csv(tmp_path / "run/results/report/summary.csv")
    assert list(df.variant) == ["fp32"]
    # Knobs that change no output change no params: nothing reruns (each used to rerun every job).
    for knob, value in (("dataset.max_image_pixels", 10**8), ("models.resnet18.train.amp", "fp16"), ("dataset.input_size", 64)):
        changed = write_config(tmp_path / "same.yaml", **{**yaml.safe_load(cfg.read_text()), knob: value})
        plan = snakemake(tmp_path / "run", "-n", "--cores", "2", config=changed)
        assert "Nothing to be done" in plan.stdout + plan.stderr, (knob, plan.stdout[-1500:])


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz 'dot' not installed")
def test_rulegraph_renders():
    out = snakemake(REPO, "--rulegraph", "--cores", "1")
    assert "fuse" in out.stdout and "digraph" in out.stdout
