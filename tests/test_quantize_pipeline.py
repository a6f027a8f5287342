"""Integration tests of the quantization rules on the tiny config's real run."""

from __future__ import annotations

import csv

import pytest
import yaml

from compressflow import artifacts, files
from tests.conftest import REPO, assert_picture, snakemake

CONFIG = yaml.safe_load((REPO / "tests" / "tiny_config.yaml").read_text())
VARIANTS = CONFIG["variants"] or {}
QUANT = {name: spec for name, spec in VARIANTS.items() if spec["technique"] in ("dynamic", "ptq", "qat", "mixed")}
PTQ = [name for name, spec in QUANT.items() if spec["technique"] == "ptq"]
pytestmark = pytest.mark.skipif(not PTQ, reason="tests/tiny_config.yaml has no quantization variants")


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_quantized_artifacts_load_and_report(tiny_run):
    res = tiny_run / "results" / "resnet18"
    for name, spec in QUANT.items():
        parent = files.read_json(res / spec["from"] / "metrics.json")
        model, recipe = artifacts.load_model(res / name / "model.pt")
        t = recipe["transforms"][-1]
        assert t["kind"] == "quantize" and t["mode"] == spec["technique"]
        metrics = files.read_json(res / name / "metrics.json")
        assert metrics["top1"] >= parent["top1"] - 0.05, f"{name} lost more than 5 pt vs its parent"
        errors = rows(res / name / "layer_error.csv")
        assert errors and all(float(r["mse"]) >= 0 for r in errors)
        if spec["technique"] == "ptq":
            assert metrics["size_mb"] < 0.3 * parent["size_mb"]
            assert files.read_json(res / name / "calibration.json")["observers"]
        if spec["technique"] == "mixed":
            info = files.read_json(res / name / "mixed.json")
            assert t["fp32_layers"] == info["fp32_layers"] and "budget_met" in info
    sens = rows(res / "sensitivity" / "sensitivity.csv")
    # one row per unit: conv1, the eight BasicBlocks, fc
    assert len(sens) == 10
    assert_picture(res / "sensitivity" / "sensitivity.png")


def test_convert_knob_does_not_recalibrate(tiny_copy, tmp_path):
    config = yaml.safe_load((REPO / "tests" / "tiny_config.yaml").read_text())
    name = PTQ[0]
    config["variants"][name]["bias_correction"] = not config["variants"][name].get("bias_correction", False)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    out = snakemake(tiny_copy, "-n", config=path)
    text = out.stdout + out.stderr
    assert "rule ptq:" in text
    assert "rule ptq_calibrate:" not in text


def test_calib_size_larger_than_split_is_one_line(tiny_copy, tmp_path):
    config = yaml.safe_load((REPO / "tests" / "tiny_config.yaml").read_text())
    name = PTQ[0]
    config["variants"][name]["calib_size"] = 100000
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    other = tiny_copy / "results" / "resnet18" / "fp32" / "model.pt"
    before = other.stat().st_mtime_ns
    out = snakemake(tiny_copy, "--cores", "1", f"results/resnet18/{name}/calibrated.pt", config=path, check=False)
    assert out.returncode != 0
    lines = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("compressflow error")]
    assert lines and "calib_size=100000 but the calib split has" in lines[0]
    assert other.stat().st_mtime_ns == before
