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


FAILING = {
    **CONFIG,
    "models": {"lstm": {"arch": "lstm", "train": {"epochs": 1, "lr": 0.01, "batch_size": 64}}},
    "variants": {
        # Torch-Pruning fails inside its own code on an LSTM (IndexError): no rule in compressflow knows this case.
        "prune-ch50": {"from": "fp32", "technique": "prune_channels", "ratio": 0.5, "finetune_epochs": 0},
        # only its job can see that the calib split is smaller: it fails
        "ptq-big": {"from": "fp32", "technique": "ptq", "calib_size": 100000},
        "dyn": {"from": "fp32", "technique": "dynamic"},
    },
    "deploy": {"variants": [], "openvino": {"enabled": False}, "tensorrt": {"mode": "off"}},
}


def test_one_unsupported_and_one_failing_variant_leave_every_other_artifact_and_a_report(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(FAILING))
    out = snakemake(tmp_path, "--cores", "2", config=cfg, check=False)
    text = out.stdout + out.stderr
    assert out.returncode != 0, text[-3000:]
    # the run's last lines: the report it still wrote, then one line per failure
    tail = [line for line in text.splitlines() if line.startswith(("compressflow:", "  FAILED"))][-3:]
    assert tail[0].startswith("compressflow: results/report/summary.md was written from what was built; 1 row(s)"), tail
    assert tail[1] == "compressflow: 1 job(s) failed:", tail
    assert tail[2].startswith("  FAILED rule ptq_calibrate (model=lstm, variant=ptq-big): CompressflowError: calib_size=100000"), tail
    assert "(log: logs/lstm/ptq-big/ptq_calibrate.log)" in tail[2]
    # an incompatibility nobody wrote a rule for: an unsupported row naming the technique, the layer, the library
    (line,) = [line for line in text.splitlines() if line.startswith("compressflow: unsupported in rule prune_channels")]
    assert "prune_channels does not support 'lstm' (LSTM): torch_pruning raised IndexError" in line, line
    rows = pd.read_csv(tmp_path / "results" / "report" / "summary.csv").set_index(["variant", "runtime"])
    assert rows.loc[("prune-ch50", "pytorch"), "note"].startswith("unsupported: prune_channels does not support 'lstm' (LSTM)")
    assert rows.loc[("ptq-big", "pytorch"), "note"].startswith("failed: CompressflowError: calib_size=100000")
    assert pd.isna(rows.loc[("ptq-big", "pytorch"), "top1"])
    # everything independent of the failed job was built and measured
    for variant in ("fp32", "dyn"):
        assert rows.loc[(variant, "pytorch"), "top1"] >= 0 and rows.loc[(variant, "pytorch"), "latency_ms_p50"] > 0, variant
    assert (tmp_path / "results" / "benchmarks" / "lstm" / "prune-ch50" / "pytorch.json").is_file()
    assert "WARNING: a partial report" in (tmp_path / "results" / "report" / "summary.md").read_text()
