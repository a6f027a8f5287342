"""Nothing stale, nothing lost, at the library level: config types, images, verification, writes."""

import copy
import json
import os
import time

import numpy as np
import pytest
import torch
import yaml
from snakemake.utils import validate

from compressflow import config as cfcheck
from compressflow import data, files, recipes, verify
from compressflow.errors import CompressflowError
from tests.conftest import REPO

SCHEMA_PATH = REPO / "config" / "schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())


def _every_knob_config():
    """The tiny config plus one variant of each technique, every integer knob present."""
    cfg = yaml.safe_load((REPO / "tests" / "tiny_config.yaml").read_text())
    cfg["variants"].update(
        {
            "q": {"from": "fp32", "technique": "qat", "freeze_observers_epoch": 0, "freeze_bn_epoch": 0},
            "m": {"from": "fp32", "technique": "mixed"},
            "l1": {"from": "fp32", "technique": "prune_l1", "amount": 0.5},
            "kd": {"from": "fp32", "technique": "distill", "student": {"arch": "mobilenet_v2"}, "epochs": 1, "lr": 0.1},
        }
    )
    cfg["dataset"]["preprocess"] = {"preset": "imagenet", "resize": 20, "crop": 16}
    validate(cfg, str(SCHEMA_PATH))  # fills every default in, as the Snakefile does
    return cfg


def _integer_leaves(value, schema, path=()):
    """(path, value) of every integer the schema asks for in ``value``."""
    schemas = cfcheck._applicable(schema, value, SCHEMA)
    if isinstance(value, dict):
        for key, child in value.items():
            subs = [s["properties"][key] for s in schemas if key in s.get("properties", {})]
            subs = subs or [s["additionalProperties"] for s in schemas if isinstance(s.get("additionalProperties"), dict)]
            for sub in subs:
                if cfcheck._is_integer_schema(sub) and isinstance(child, int) and not isinstance(child, bool):
                    yield (*path, key), child
                yield from _integer_leaves(child, sub, (*path, key))
    elif isinstance(value, list):
        for s in schemas:
            if isinstance(s.get("items"), dict):
                for i, child in enumerate(value):
                    if cfcheck._is_integer_schema(s["items"]) and isinstance(child, int):
                        yield (*path, i), child
                    yield from _integer_leaves(child, s["items"], (*path, i))


def _set(cfg, path, value):
    node = cfg
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value


def _get(cfg, path):
    for p in path:
        cfg = cfg[p]
    return cfg


def test_every_integer_knob_settles_floats_at_config_time():
    base = _every_knob_config()
    leaves = dict(_integer_leaves(base, SCHEMA))
    keys = {p[-1] if isinstance(p[-1], str) else p[-2] for p in leaves}
    # Every integer key the schema declares is exercised (a new knob joins this test by itself).
    assert _integer_keys(SCHEMA) <= keys, _integer_keys(SCHEMA) - keys
    for path, value in leaves.items():
        integral = copy.deepcopy(base)
        _set(integral, path, float(value))
        cfcheck.check_schema(integral, SCHEMA_PATH)
        assert _get(integral, path) == value and type(_get(integral, path)) is int, path
        assert integral == base, path  # 1.0 is the same config as 1: same params, nothing reruns
        fractional = copy.deepcopy(base)
        _set(fractional, path, value + 0.5)
        with pytest.raises(CompressflowError, match="wrong type; expected"):
            cfcheck.check_schema(fractional, SCHEMA_PATH)


def _integer_keys(schema):
    """Names of every property declared as an integer anywhere in the schema."""
    found = set()
    if isinstance(schema, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if isinstance(sub, dict) and (cfcheck._is_integer_schema(sub) or cfcheck._is_integer_schema(sub.get("items") or {})):
                found.add(name)
        for value in schema.values():
            found |= _integer_keys(value)
    elif isinstance(schema, list):
        for value in schema:
            found |= _integer_keys(value)
    return found


def test_duplicate_key_and_yaml_syntax_name_file_and_line(tmp_path):
    dup = tmp_path / "dup.yaml"
    dup.write_text("seed: 0\nvariants:\n  fused: {from: fp32, technique: fuse}\n  fused: {from: fp32, technique: dynamic}\n")
    with pytest.raises(CompressflowError, match=r"dup.yaml' line 4: key 'fused' is given twice \(first on line 3\)"):
        cfcheck.read_config_file(dup)
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 0\ndataset:\n  kind: digits\n   input_size: 16\n")
    with pytest.raises(CompressflowError, match=r"bad.yaml' line 4, column \d+ is not valid YAML") as exc:
        cfcheck.read_config_file(bad)
    assert "\n" not in str(exc.value)


def test_reserved_names_are_refused_with_the_list():
    for name in ("sensitivity", "onnx", "fused/openvino"):
        cfg = {"models": {"resnet18": {}}, "variants": {name: {"from": "fp32", "technique": "fuse"}}}
        with pytest.raises(CompressflowError, match="reserved names: benchmarks, data, logs, onnx"):
            cfcheck.check_names(cfg)
    with pytest.raises(CompressflowError, match="models.data"):
        cfcheck.check_names({"models": {"data": {}}, "variants": {}})


def test_error_lines_carry_no_colour_codes_or_line_breaks():
    err = CompressflowError("\x1b[1mWeights only load failed.\x1b[0m\nmore", "do\nthis")
    assert str(err) == "Weights only load failed. more; fix: do this"


def test_checkpoint_of_a_wrapped_model_loads(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    path = tmp_path / "ddp.pt"
    torch.save({f"module._orig_mod.{k}": v for k, v in model.state_dict().items()}, path)
    fresh = torch.nn.Sequential(torch.nn.Linear(2, 2))
    recipes.load_state(fresh, recipes.read_state_dict(path, "checkpoint"), str(path))
    assert torch.equal(fresh[0].weight, model[0].weight)
    (tmp_path / "dir.pt").mkdir()
    with pytest.raises(CompressflowError, match="is a directory, not a file"):
        recipes.read_state_dict(tmp_path / "dir.pt", "checkpoint")


def test_identical_rewrite_keeps_the_file_and_its_mtime(tmp_path):
    target = tmp_path / "split.pt"
    files.save_tensors({"x": torch.arange(4)}, target)
    old = target.stat()
    os.utime(target, ns=(old.st_atime_ns, old.st_mtime_ns - 10**9))  # as if written a second ago
    old = target.stat()
    files.save_tensors({"x": torch.arange(4)}, target)
    new = target.stat()
    assert (new.st_ino, new.st_mtime_ns) == (old.st_ino, old.st_mtime_ns)
    files.save_tensors({"x": torch.arange(5)}, target)
    assert target.stat().st_mtime_ns != old.st_mtime_ns and torch.load(target)["x"].numel() == 5
    assert [p.name for p in tmp_path.iterdir()] == ["split.pt"]


def _record(folder, rule, **outputs):
    rec = {"rule": rule, "outputs": {k: {"path": str(p), "sha256": verify.sha256(p)} for k, p in outputs.items()}}
    (folder / "provenance.json").write_text(json.dumps(rec))


def test_inputs_are_verified_against_their_provenance(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "results" / "m" / "fp32"
    folder.mkdir(parents=True)
    model = folder / "model.pt"
    model.write_bytes(b"a" * 1000)
    _record(folder, "train_baseline", model=model.relative_to(tmp_path))
    user = tmp_path / "mine.pt"
    user.write_bytes(b"user checkpoint: no record, not verified")
    rel = "results/m/fp32/model.pt"
    assert set(verify.inputs({"model": rel, "checkpoint": str(user)})) == {rel}
    assert verify.changed_artifacts("results") is None
    with open(model, "r+b") as f:  # 64 bytes in the middle, as a disk or a careless edit would
        f.seek(400)
        f.write(b"\xff" * 64)
    future = time.time() + 10
    os.utime(model, (future, future))
    with pytest.raises(CompressflowError) as exc:
        verify.inputs({"model": rel})
    assert f"artifact '{rel}'" in str(exc.value) and "fix: rebuild it with --forcerun train_baseline" in str(exc.value)
    assert "results/m/fp32/provenance.json" in str(verify.changed_artifacts("results"))
    assert verify.changed_artifacts("results", forced={"train_baseline"}) is None
    assert verify.changed_artifacts("results", forceall=True) is None


def _png16(path, values):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(values, dtype=np.uint16)).save(path)


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    from PIL import Image

    ramp = np.tile(np.linspace(0, 65535, 16).round().astype(np.uint16), (16, 1))
    _png16(tmp_path / "a.png", ramp)
    with Image.open(tmp_path / "a.png") as im:
        assert im.mode.startswith("I")
        rgb = data.to_rgb8(im, "a.png")
    assert rgb.shape == (16, 16, 3) and rgb[0, 0, 0] == 0 and rgb[0, -1, 0] == 255
    assert np.array_equal(rgb[0, :, 0], np.round(ramp[0] / 257).astype(np.uint8))  # a ramp, not 83 % at 255
    assert (rgb == 255).mean() < 0.1


def test_cmyk_exif_grey_palette_rgba_become_rgb(tmp_path):
    from PIL import Image

    red = Image.new("RGB", (8, 4), (200, 30, 30))
    cases = {
        "cmyk.jpg": red.convert("CMYK"),
        "grey.png": red.convert("L"),
        "palette.png": red.convert("P"),
        "rgba.png": red.convert("RGBA"),
    }
    for name, im in cases.items():
        im.save(tmp_path / name)
    rotated = Image.new("RGB", (8, 4), (200, 30, 30))
    exif = rotated.getexif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    rotated.save(tmp_path / "exif.jpg", exif=exif)
    for name in [*cases, "exif.jpg"]:
        with Image.open(tmp_path / name) as im:
            rgb = data.to_rgb8(im, name)
        assert rgb.dtype == np.uint8 and rgb.shape[2] == 3, name
        assert rgb.shape[:2] == ((8, 4) if name == "exif.jpg" else (4, 8)), name  # EXIF rotation applied
        mean = rgb.reshape(-1, 3).mean(0)
        if name == "grey.png":
            assert np.ptp(mean) < 1
        else:
            assert mean[0] > 150 and mean[1] < 80, (name, mean)


def test_unconvertible_mode_and_oversized_image_stop_the_scan(tmp_path):
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        Image.new("RGB", (10, 10)).save(tmp_path / cls / "1.png")
    with pytest.raises(CompressflowError, match=r"1.png' has 10x10 = 100 pixels, more than dataset.max_image_pixels \(99\)"):
        data.scan_imagefolder(tmp_path, max_pixels=99)
    Image.new("F", (4, 4), 0.5).save(tmp_path / "b" / "2.tif")
    with pytest.raises(CompressflowError, match=r"2.tif' has mode 'F', which cannot be converted to 8-bit RGB faithfully"):
        data.scan_imagefolder(tmp_path)


def test_manifest_follows_content_not_mtime(tmp_path):
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        Image.new("RGB", (10, 10), 10).save(tmp_path / cls / "1.png")
    digest = data.manifest_digest(data.scan_imagefolder(tmp_path)[2])
    os.utime(tmp_path / "a" / "1.png", (1, 1))
    assert data.manifest_digest(data.scan_imagefolder(tmp_path)[2]) == digest
    Image.new("RGB", (10, 10), 11).save(tmp_path / "a" / "1.png")
    edited = data.manifest_digest(data.scan_imagefolder(tmp_path)[2])
    Image.new("RGB", (10, 10), 10).save(tmp_path / "b" / "2.png")
    added = data.manifest_digest(data.scan_imagefolder(tmp_path)[2])
    assert len({digest, edited, added}) == 3


def test_a_read_only_sub_folder_of_results_is_one_line(tmp_path):
    """A job that writes there would fail late with Snakemake's traceback: refused at parse time instead."""
    import subprocess

    sub = tmp_path / "results" / "resnet18" / "fused"
    sub.mkdir(parents=True)
    if subprocess.run(["mount", "--bind", "-o", "ro", str(sub), str(sub)], capture_output=True).returncode != 0:
        pytest.skip("needs root and bind mounts (a chmod does not stop root)")
    try:
        with pytest.raises(CompressflowError, match=r"results/resnet18/fused' is not writable.*fix: make it writable"):
            cfcheck.check_writable(tmp_path)
    finally:
        subprocess.run(["umount", str(sub)])
    cfcheck.check_writable(tmp_path)
