"""Nothing stale, nothing lost, through the real workflow: exit code, the one line, and file hashes."""

import json
import os
import shutil

import pytest
import yaml

from tests.conftest import REPO, snakemake, write_config
from tests.test_bad_inputs import _state
from tests.test_reproducibility import _planned_jobs


def _tiny(tmp_path, name="cfg.yaml", **changes):
    return write_config(tmp_path / name, sep="__", **changes)


def _fails_with_one_line(workdir, *args, config=None, marker="compressflow", needles=()):
    before = _state(workdir)
    out = snakemake(workdir, *args, config=config, check=False)
    text = out.stdout + out.stderr
    assert out.returncode != 0, text[-2000:]
    lines = [line for line in text.splitlines() if line.startswith(marker)]
    assert len(lines) == 1, text[-3000:]
    assert all(n in lines[0] for n in needles) and "fix:" in lines[0] and "\x1b" not in lines[0], lines[0]
    assert _state(workdir) == before
    return lines[0]


def test_integral_floats_are_the_same_config(tiny_run, tmp_path):
    cfg = _tiny(tmp_path, dataset__input_size=16.0, evaluate__threads=1.0)
    cfg_data = yaml.safe_load(cfg.read_text())
    cfg_data["models"]["resnet18"]["train"]["epochs"] = 3.0
    cfg_data["variants"]["qat-x86"]["epochs"] = 1.0
    cfg.write_text(yaml.safe_dump(cfg_data))
    assert _planned_jobs(tiny_run, cfg) == set()


def test_corrupt_artifact_stops_the_run_before_anything_is_deleted(tiny_copy):
    model = tiny_copy / "results/resnet18/fp32/model.pt"
    with open(model, "r+b") as f:
        f.seek(model.stat().st_size // 2)
        f.write(b"\x00" * 64)
    line = _fails_with_one_line(
        tiny_copy,
        "--cores",
        "1",
        needles=["artifact 'results/resnet18/fp32/model.pt'", "fix: rebuild it with --forcerun train_baseline"],
    )
    assert line.startswith("compressflow error: ")
    assert not list((tiny_copy / ".snakemake" / "locks").glob("*"))  # the refusal released Snakemake's lock
    # The fix it names is accepted: forcing the rule that made the file plans its rebuild.
    out = snakemake(tiny_copy, "-n", "--cores", "1", "--forcerun", "train_baseline")
    assert "train_baseline" in out.stdout


@pytest.mark.parametrize(
    "path, rule", [("results/report/summary.csv", "make_report"), ("results/resnet18/fp32/history.json", "train_baseline")]
)
def test_a_hand_edited_result_is_seen_when_there_is_nothing_to_do(tiny_copy, path, rule):
    """It used to get "Nothing to be done" and exit 0: the check ran only before jobs that were about to run."""
    edited = tiny_copy / path
    edited.write_text(edited.read_text().replace("0", "1", 1))
    line = _fails_with_one_line(tiny_copy, "-n", "--cores", "1", needles=[f"artifact '{path}'", f"fix: rebuild it with --forcerun {rule}"])
    assert line.startswith("compressflow error: ")


def test_rebuilt_identical_splits_retrain_nothing(tiny_copy):
    """Forcing the data rule rewrites the four splits byte for byte: nothing downstream reruns."""
    before = _state(tiny_copy)
    record = tiny_copy / "results/data/provenance.json"
    outputs = json.loads(record.read_text())["outputs"]
    assert _planned_jobs(tiny_copy, None, REPO) == set()
    forced = ("-n", "--cores", "1", "--forcerun", "prepare_data")
    assert "train_baseline" not in snakemake(tiny_copy, *forced).stdout
    snakemake(tiny_copy, "--cores", "1", "--forcerun", "prepare_data")
    after = _state(tiny_copy)
    # Nothing else was rewritten; the data's own record is new only where it names the commit that
    # ran it, and records the same output hashes.
    # prepare_data's own Snakemake benchmark: file (.tsv) holds the forced job's wall time: it changes.
    kept = lambda state: {k: v for k, v in state.items() if k != str(record) and not k.endswith("/prepare_data.tsv")}  # noqa: E731
    assert kept(after) == kept(before)
    assert json.loads(record.read_text())["outputs"] == outputs
    assert _planned_jobs(tiny_copy) == set()


def test_deleted_split_comes_back_and_reruns_only_its_readers(tiny_copy):
    (tiny_copy / "results/data/test.pt").unlink()
    jobs = _planned_jobs(tiny_copy)
    assert ("prepare_data", "", "") in jobs
    # A missing file always reruns the jobs that read it (Snakemake cannot know the rebuilt bytes
    # match), but the other splits are unchanged: no training, pruning or quantization reruns.
    readers = {"evaluate", "evaluate_onnxruntime", "evaluate_openvino", "evaluate_tensorrt", "make_report", "collect_benchmarks"}
    assert {rule for rule, _, _ in jobs} <= {"prepare_data", "all", *readers}


def test_deleted_artifacts_are_planned_again(tiny_copy):
    (tiny_copy / "results/resnet18/fused/model.pt").unlink()
    (tiny_copy / "results/resnet18/ptq-x86/calibrated.pt").unlink()
    jobs = _planned_jobs(tiny_copy)
    assert ("fuse", "resnet18", "fused") in jobs and ("ptq_calibrate", "resnet18", "ptq-x86") in jobs


def test_cores_zero_is_refused_at_parse_time(tiny_run):
    _fails_with_one_line(tiny_run, "--cores", "0", needles=["--cores 0 leaves no core"])


def test_duplicate_key_names_key_and_line(tiny_run, tmp_path):
    text = (REPO / "tests" / "tiny_config.yaml").read_text()
    dup = tmp_path / "dup.yaml"
    dup.write_text(
        text.replace(
            "  fused: {from: fp32, technique: fuse}\n", "  fused: {from: fp32, technique: fuse}\n  fused: {from: fp32, technique: fuse}\n"
        )
    )
    line = _fails_with_one_line(tiny_run, "--cores", "1", config=dup, needles=["dup.yaml' line", "key 'fused' is given twice"])
    assert "(first on line" in line


def _images(root, n=10, value=0):
    from PIL import Image

    for c, cls in enumerate(("a", "b")):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (8, 8), (value + 20 * c + i,) * 3).save(root / cls / f"{i}.png")


def test_images_are_an_input(tmp_path):
    """Adding, removing or editing an image reruns data and its consumers; touching one does not."""
    root, work = tmp_path / "images", tmp_path / "run"
    _images(root)
    cfg = _tiny(tmp_path, dataset={"kind": "imagefolder", "root": str(root), "input_size": 8}, variants={}, deploy={})
    snakemake(work, "--cores", "1", "results/data/provenance.json", config=cfg)
    record = yaml.safe_load((work / "results/data/provenance.json").read_text())
    assert len(record["params"]["manifest"]) == 64  # the provenance names the tree's content
    planned = _planned_jobs(work, cfg)
    assert ("prepare_data", "", "") not in planned and ("train_baseline", "resnet18", "") in planned

    os.utime(root / "a/1.png", (1, 1))  # mtime alone: same content, nothing to redo
    assert ("prepare_data", "", "") not in _planned_jobs(work, cfg)
    changes = [
        ("added", lambda: _images(root / "a" / "more", n=1, value=100), True),
        ("removed", lambda: shutil.rmtree(root / "a" / "more") or (root / "b/3.png").unlink(), True),
        ("edited in place", lambda: _images(root, n=1, value=200), True),
    ]
    for what, change, reruns in changes:
        change()
        jobs = _planned_jobs(work, cfg)
        assert (("prepare_data", "", "") in jobs) == reruns, what
        if reruns:
            assert ("train_baseline", "resnet18", "") in jobs and ("evaluate", "resnet18", "fp32") in jobs, what
