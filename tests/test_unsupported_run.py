"""End to end: a variant whose technique cannot handle the architecture gets a report row saying so; the run finishes."""

import json

import pandas as pd
import pytest
import yaml

from tests.conftest import snakemake

CONFIG = {
    "seed": 0,
    "dataset": {"kind": "digits", "input_size": 16, "splits": {"train": 0.6, "calib": 0.1, "val": 0.1, "test": 0.2}},
    # RowLSTM has no Conv2d+BatchNorm2d: fuse is unsupported for it, a known limit (docs/support.md).
    "models": {"lstm": {"arch": "lstm", "train": {"epochs": 1, "lr": 0.01, "batch_size": 64}}},
    "variants": {
        "fused": {"from": "fp32", "technique": "fuse"},
        "fused/dyn": {"from": "fused", "technique": "dynamic"},
        "dyn": {"from": "fp32", "technique": "dynamic"},
    },
    "deploy": {"variants": ["fused"], "openvino": {"enabled": False}, "tensorrt": {"mode": "off"}},
    "evaluate": {"batch_size": 256, "threads": 1, "latency": {"input_size": 16, "warmup": 1, "iters": 3}},
    "benchmark": {"batch_sizes": [1], "warmup": 1, "iters": 2, "input_size": 16, "threads": 1},
    "report": {"max_accuracy_drop": 0.01},
}


@pytest.mark.slow
def test_unsupported_variant_gets_a_row_and_the_run_finishes(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    out = snakemake(tmp_path, "--cores", "2", config=cfg)
    text = out.stdout + out.stderr
    assert "Traceback" not in text
    lines = [line for line in text.splitlines() if "unsupported in rule fuse" in line]
    assert len(lines) == 1 and "fuse does not support RowLSTM" in lines[0] and "fix: drop the fuse variant" in lines[0], text[-3000:]
    df = pd.read_csv(tmp_path / "results" / "report" / "summary.csv")
    rows = df.set_index(["variant", "runtime"])
    for key in [("fused", "pytorch"), ("fused/dyn", "pytorch"), ("fused", "onnxruntime"), ("fused", "onnxruntime-int8")]:
        assert rows.loc[key, "note"].startswith("unsupported: fuse does not support RowLSTM"), key
        assert pd.isna(rows.loc[key, "top1"]), key
    # the supported variants are measured as usual
    assert rows.loc[("dyn", "pytorch"), "top1"] > 0 and rows.loc[("fp32", "pytorch"), "top1"] > 0
    metrics = json.loads((tmp_path / "results" / "lstm" / "fused" / "metrics.json").read_text())
    assert metrics["status"] == "unsupported" and metrics["fix"].startswith("drop the fuse variant")
