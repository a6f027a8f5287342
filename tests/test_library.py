"""Unit tests of the library on small tensors and modules."""

import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from compressflow import artifacts, data, evaluate, files, fusion, measure, models, provenance, recipes, report, train
from compressflow import config as cfg
from compressflow.errors import CompressflowError
from tests.conftest import REPO, tiny_model


def test_digits_are_real_resized_three_channel_images():
    x, y, classes = data.load_digits(16)
    assert x.shape == (1797, 3, 16, 16) and x.dtype == torch.uint8
    assert torch.equal(x[:, 0], x[:, 1]) and len(classes) == 10
    assert y.bincount().min() >= 170
    assert x.float().std() > 30  # not blank


def test_split_is_stratified_disjoint_and_seeded():
    _, y, _ = data.load_digits(8)
    fr = {"train": 0.6, "calib": 0.1, "val": 0.1, "test": 0.2}
    a, b = data.split_indices(y, fr, 0), data.split_indices(y, fr, 0)
    assert all((a[k] == b[k]).all() for k in a)
    allidx = sorted(i for k in a for i in a[k])
    assert allidx == list(range(len(y)))
    assert len(a["test"]) == 360
    counts = y[torch.from_numpy(a["test"])].bincount()
    assert counts.max() - counts.min() <= 2
    c = data.split_indices(y, fr, 1)
    assert not (a["test"] == c["test"]).all()


def test_split_fractions_must_sum_to_one():
    with pytest.raises(CompressflowError, match="sum to"):
        data.split_indices(torch.arange(100) % 2, {"train": 0.5, "calib": 0.1, "val": 0.1, "test": 0.1}, 0)


def _write_image(path, mode="RGB", size=(12, 10), color=128):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color=color).save(path)


def test_imagefolder_reads_classes_and_converts_modes(tmp_path):
    for c in range(3):
        for i in range(5):
            _write_image(tmp_path / f"class{c}" / f"{i}.png", mode="L" if i % 2 else "RGB", color=40 * c + i)
    x, y, classes, _ = data.load_imagefolder(tmp_path, 16)
    assert x.shape == (15, 3, 16, 16) and classes == ["class0", "class1", "class2"]
    assert y.tolist() == [0] * 5 + [1] * 5 + [2] * 5


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda r: (r / "a").mkdir() or (r / "b").mkdir(), "has no images"),
        (lambda r: _write_image(r / "a" / "1.png") or (r / "b").mkdir(parents=True), "has no images"),
        (
            lambda r: _write_image(r / "a" / "1.png") or _write_image(r / "b" / "1.png") or (r / "b" / "x.txt").write_text("hi"),
            "not an image",
        ),
        (
            lambda r: _write_image(r / "a" / "1.png") or (r / "b").mkdir() or (r / "b" / "2.png").write_bytes(b"\x89PNG broken"),
            "cannot be read",
        ),
        (lambda r: _write_image(r / "a" / "1.png"), "class folders"),
    ],
)
def test_imagefolder_bad_trees_give_one_line(tmp_path, setup, message):
    setup(tmp_path)
    with pytest.raises(CompressflowError, match=message) as exc:
        data.load_imagefolder(tmp_path, 16)
    assert "\n" not in str(exc.value) and "fix:" in str(exc.value)


def test_imagefolder_follows_symlinked_folders_and_skips_hidden_ones(tmp_path, capsys):
    """As torchvision's ImageFolder: a symlinked sub-folder counts; a hidden one (.ipynb_checkpoints) does not, with a warning."""
    for c in ("a", "b"):
        for i in range(2):
            _write_image(tmp_path / "root" / c / f"{i}.png", color=10 * i)
    _write_image(tmp_path / "elsewhere" / "more.png")
    (tmp_path / "root" / "a" / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    _write_image(tmp_path / "root" / "b" / ".ipynb_checkpoints" / "0-checkpoint.png")
    items, classes, _ = data.scan_imagefolder(tmp_path / "root")
    names = sorted(p.relative_to(tmp_path / "root").as_posix() for p, _ in items)
    assert names == ["a/0.png", "a/1.png", "a/linked/more.png", "b/0.png", "b/1.png"]
    err = capsys.readouterr().err
    assert "skipped 1 hidden folder(s) inside class folders" in err and ".ipynb_checkpoints" in err


def test_a_truncated_jpeg_is_refused_before_any_job_and_decoded_once(tmp_path):
    """Image.verify() reads no JPEG pixels; new bytes are decoded in full once, and the cache spares the next scans."""
    import io

    from PIL import Image

    for c in ("a", "b"):
        _write_image(tmp_path / "root" / c / "0.png")
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), 90).save(buf, "JPEG")
    (tmp_path / "root" / "b" / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    cache = tmp_path / "decoded.txt"
    with pytest.raises(CompressflowError, match=r"image '.*cut.jpg' cannot be read .*fix: replace or remove the corrupt file"):
        data.scan_imagefolder(tmp_path / "root", decode_cache=cache)
    (tmp_path / "root" / "b" / "cut.jpg").write_bytes(buf.getvalue())
    data.scan_imagefolder(tmp_path / "root", decode_cache=cache)
    assert len(cache.read_text().split()) == 2  # the two PNGs are the same bytes


def test_a_file_name_that_is_not_utf8_is_named(tmp_path):
    for c in ("a", "b"):
        _write_image(tmp_path / "root" / c / "0.png")
    _write_image(Path(os.fsdecode(bytes(tmp_path / "root" / "a") + b"/caf\xe9.png")))
    with pytest.raises(CompressflowError, match=r"file name '.*caf\\xe9.png' is not valid UTF-8; fix: rename it"):
        data.scan_imagefolder(tmp_path / "root")


def test_model_roundtrip_is_weights_only_and_exact(tmp_path):
    model = models.build("resnet18", 10).eval()
    path = tmp_path / "m.pt"
    artifacts.save_model(model, recipes.base_recipe("resnet18", 10), path)
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == artifacts.MODEL_FORMAT
    loaded, recipe = artifacts.load_model(path)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert recipe["arch"] == "resnet18"


def test_malicious_pickle_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "evil.pt"
    with open(bad, "wb") as f:
        pickle.dump(Evil(), f)
    with pytest.raises(CompressflowError, match="refused to load"):
        files.load_tensors(bad, "checkpoint")
    torch.save({"w": Evil()}, tmp_path / "evil2.pt")
    with pytest.raises(CompressflowError, match="refused to load"):
        files.load_tensors(tmp_path / "evil2.pt", "checkpoint")
    assert not marker.exists()


def test_truncated_and_missing_files(tmp_path):
    good = tmp_path / "g.pt"
    torch.save({"w": torch.ones(1000)}, good)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:300])
    with pytest.raises(CompressflowError, match="truncated or corrupt"):
        files.load_tensors(cut)
    with pytest.raises(CompressflowError, match="does not exist"):
        files.load_tensors(tmp_path / "nope.pt")


def test_load_state_names_mismatches():
    model = models.build("resnet18", 10)
    other = models.build("resnet18", 5).state_dict()
    with pytest.raises(CompressflowError, match="fc.weight"):
        recipes.load_state(model, other, "x.pt")
    with pytest.raises(CompressflowError, match="missing"):
        recipes.load_state(model, models.build("mobilenet_v2", 10).state_dict(), "x.pt")
    sd = model.state_dict()
    sd["conv1.weight"][0, 0, 0, 0] = float("nan")
    with pytest.raises(CompressflowError, match="NaN"):
        recipes.load_state(models.build("resnet18", 10), sd, "x.pt")


def test_unknown_arch():
    with pytest.raises(CompressflowError, match="unknown architecture 'vgg'.*did you mean vgg"):
        models.build("vgg", 10)


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2"])
def test_fold_bn_matches_and_rebuilds(arch, tmp_path):
    torch.manual_seed(0)
    model = models.build(arch, 10)
    model.train()
    with torch.no_grad():  # make BN statistics non-trivial
        for _ in range(3):
            model(torch.randn(8, 3, 32, 32))
    model.eval()
    x = torch.randn(4, 3, 32, 32)
    ref = model(x).detach()
    fused, pairs = fusion.fold_bn(model)
    assert len(pairs) > 10
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert (fused(x) - ref).abs().max() < 1e-4
    recipe = recipes.with_transform(recipes.base_recipe(arch, 10), {"kind": "fold_bn", "pairs": pairs})
    artifacts.save_model(fused, recipe, tmp_path / "f.pt")
    loaded, _ = artifacts.load_model(tmp_path / "f.pt")
    assert torch.equal(loaded(x), fused(x))


def test_fold_bn_without_bn_is_unsupported_for_that_variant():
    from compressflow.unsupported import Unsupported

    with pytest.raises(Unsupported, match="fuse does not support .*no Conv2d followed by BatchNorm2d.*fix: drop the fuse variant"):
        fusion.fold_bn(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()))


def test_fit_is_deterministic_and_learns():
    x, y, classes = data.load_digits(8)
    split = {"x": x[:300], "y": y[:300], "classes": classes}
    runs = []
    for _ in range(2):
        train.seed_everything(0, 1)
        model = tiny_model(10)
        hist = train.fit(model, split, epochs=3, lr=0.1, batch_size=32, seed=0)
        runs.append((model.state_dict(), hist))
    assert all(torch.equal(runs[0][0][k], runs[1][0][k]) for k in runs[0][0])
    assert runs[0][1][-1]["loss"] < runs[0][1][0]["loss"]


def test_fit_rejects_negative_epochs():
    with pytest.raises(CompressflowError, match="epochs=-1"):
        train.fit(
            tiny_model(),
            {"x": torch.zeros(2, 3, 8, 8, dtype=torch.uint8), "y": torch.zeros(2, dtype=torch.long)},
            epochs=-1,
            lr=0.1,
            batch_size=2,
            seed=0,
        )


def test_metrics_helpers():
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 0.0, 2.0]])
    y = torch.tensor([0, 2, 1])
    assert evaluate.topk(logits, y, 1) == pytest.approx(1 / 3)
    assert evaluate.topk(logits, y, 2) == pytest.approx(2 / 3)
    assert evaluate.topk(logits, y, 5) is None  # k >= classes: says nothing
    agree = evaluate.agreement(logits, logits + 0.5)
    assert agree["top1_agreement_vs_parent"] == 1.0 and agree["max_abs_diff_vs_parent"] == pytest.approx(0.5)
    lat = measure.latency(lambda t: t * 2, torch.ones(1, 3), warmup=1, iters=5)
    assert 0 < lat["latency_ms_p50"] <= lat["latency_ms_p90"]


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    files.write_json({"a": 1}, target)
    with pytest.raises(RuntimeError):
        with files.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_provenance_hashes(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"abc")
    rec = provenance.record("r", {"a": str(f)}, {}, {"k": 1}, 0, REPO)
    assert rec["inputs"]["a"]["sha256"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert rec["versions"]["torch"] == torch.__version__.split("+")[0]


def _config():
    import yaml

    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda c: c.update(bogus=1), "unknown key(s) ['bogus']"),
        (lambda c: c["dataset"].update(input_size="big"), "dataset.input_size"),
        (lambda c: c["dataset"].update(kind="mnist"), "allowed values: digits, imagefolder"),
        (lambda c: c["models"]["resnet18"].update(arch="vgg61"), "models.resnet18.arch: unknown architecture 'vgg61'"),
        (lambda c: c["models"]["resnet18"]["train"].update(epochs=-1), "models.resnet18.train.epochs"),
        (lambda c: c["variants"].update(x={"from": "nope", "technique": "fuse"}), "names 'nope'"),
        (lambda c: c["variants"].update(fp32={"from": "fused", "technique": "fuse"}), "reserved"),
        (lambda c: c["variants"].update(a={"from": "b", "technique": "fuse"}, b={"from": "a", "technique": "fuse"}), "depends on itself"),
        (lambda c: c["variants"]["fused"].update(tolerance=5), "variants.fused.tolerance"),
        # scikit-learn's split refuses seeds >= 2**32 inside prepare_data, after Snakemake deleted the old splits
        (lambda c: c.update(seed=1099511627776), "config key 'seed': value 1099511627776 out of range"),
    ],
)
def test_config_errors_are_one_line(mutate, needle):
    c = _config()
    cfg.check_schema(c, REPO / "config" / "schema.yaml")
    cfg.check(c)
    mutate(c)
    with pytest.raises(CompressflowError) as exc:
        cfg.check_schema(c, REPO / "config" / "schema.yaml")
        cfg.check(c)
    msg = str(exc.value)
    assert needle in msg and "\n" not in msg


def test_report_flags_not_faster(tmp_path):
    rows = [
        ("fp32", "", "train", {"top1": 0.9, "runtime": "pytorch", "latency_ms_p50": 10.0}),
        ("fast", "fp32", "fuse", {"top1": 0.9, "runtime": "pytorch", "latency_ms_p50": 5.0, "speedup_vs_parent": 2.0}),
        ("slow", "fp32", "fuse", {"top1": 0.8, "runtime": "pytorch", "latency_ms_p50": 10.0, "speedup_vs_parent": 1.01}),
    ]
    entries = []
    for v, p, t, m in rows:
        path = tmp_path / f"{v}.json"
        files.write_json(m, path)
        entries.append({"model": "m", "variant": v, "parent": p, "technique": t, "metrics_path": path})
    df = report.summarize(entries, 1.05).set_index("variant")
    assert df.loc["fast", "faster_than_parent"] is True or df.loc["fast", "faster_than_parent"] == True  # noqa: E712
    assert df.loc["slow", "faster_than_parent"] == False  # noqa: E712
    assert "not faster" in df.loc["slow", "note"]
    assert df.loc["slow", "top1_drop_vs_fp32"] == pytest.approx(0.1)
    assert list(df.index)[0] == "fp32"


@pytest.mark.parametrize(
    "n, batch_size, epochs",
    [
        (1078, 256, 1),  # 5 optimizer steps: OneCycleLR's warm-up had no step and divided by zero
        (7, 3, 2),  # a last batch of one image: BatchNorm refuses it in training mode
        (1, 4, 1),  # one image, one step
    ],
)
def test_training_works_for_any_step_count_and_batch_remainder(n, batch_size, epochs):
    import math

    torch.manual_seed(0)
    model = tiny_model(3)
    split = {"x": torch.randn(n, 3, 8, 8), "y": torch.arange(n) % 3}
    if n == 1:
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 3))  # one image cannot train BatchNorm
    history = train.fit(model, split, epochs=epochs, lr=0.05, batch_size=batch_size, seed=0)
    assert len(history) == epochs and all(math.isfinite(h["loss"]) for h in history)


def test_top5_is_left_empty_when_there_are_no_more_than_five_classes():
    """Top-k with k >= the number of classes is 1.0 whatever the model does: not reported."""
    y = torch.tensor([0, 1, 0, 1])
    assert evaluate.topk(torch.randn(4, 2), y, 5) is None
    assert evaluate.topk(torch.randn(4, 5), y, 5) is None
    logits = torch.eye(6)[[0, 1, 0, 1]]
    assert evaluate.topk(logits, y, 5) == 1.0 and evaluate.topk(logits, y, 1) == 1.0
