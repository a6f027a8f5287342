"""dataset.preprocess follows torchvision; splits stream from their caches; near chance is shouted about."""

import json
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from compressflow import data, report, stats
from compressflow import preprocess as pp
from compressflow.errors import CompressflowError
from tests.conftest import SPLIT_FRACTIONS, snakemake, tiny_model

FRACTIONS = SPLIT_FRACTIONS


def _photos(folder, n=6, seed=0):
    """Real-looking RGB images (gradients + noise) of varied, non-square sizes, as JPEG and PNG."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        h, w = int(rng.integers(60, 300)), int(rng.integers(60, 300))
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (h + w)], axis=2) + rng.normal(0, 20, (h, w, 3))
        p = folder / f"{i}.{'jpg' if i % 2 else 'png'}"
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(p)
        paths.append(p)
    return paths


def test_imagenet_preset_is_torchvisions_resnet18_transform(tmp_path):
    from torchvision import transforms as T
    from torchvision.models import ResNet18_Weights

    tv = ResNet18_Weights.DEFAULT.transforms()
    pre = pp.resolve({"input_size": 32, "preprocess": "imagenet"})
    assert (pre["resize"], pre["crop"], pre["interpolation"]) == (tv.resize_size[0], tv.crop_size[0], tv.interpolation.value)
    assert pre["mean"] == list(tv.mean) and pre["std"] == list(tv.std)
    geometric = T.Compose([T.Resize(256), T.CenterCrop(224), T.PILToTensor()])
    for path in _photos(tmp_path):
        mine = data.decode(path, pre)
        with Image.open(path) as im:
            rgb = im.convert("RGB")
            assert np.array_equal(mine, geometric(rgb).numpy())  # the stored uint8 bytes
            expected = tv(rgb)
        got = data.to_input(torch.from_numpy(mine)[None], pre)[0]
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def test_overrides_bicubic_and_bad_preprocess(tmp_path):
    from torchvision import transforms as T

    pre = pp.resolve({"input_size": 8, "preprocess": {"preset": "imagenet", "resize": 40, "crop": 32, "interpolation": "bicubic"}})
    assert pre["mean"] == pp.IMAGENET_MEAN and pp.model_size(pre) == 32
    pipe = T.Compose([T.Resize(40, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(32), T.PILToTensor()])
    for path in _photos(tmp_path, n=2):
        with Image.open(path) as im:
            assert np.array_equal(data.decode(path, pre), pipe(im.convert("RGB")).numpy())
    digits = pp.resolve({"input_size": 16})
    assert digits == {
        "preset": "digits",
        "resize": [16, 16],
        "crop": None,
        "interpolation": "bilinear",
        "mean": [0.5] * 3,
        "std": [0.5] * 3,
    }
    for bad in ({"preset": "cifar"}, {"crop": 0}, {"resize": 64, "crop": None}, {"std": [1, 0, 1]}, {"colour": 1}):
        with pytest.raises(CompressflowError):
            pp.resolve({"input_size": 8, "preprocess": bad})


@pytest.mark.parametrize("resize", [16, [16, 40], [40, 16]])
def test_a_crop_larger_than_the_resized_image_is_refused(resize):
    """torchvision's CenterCrop zero-pads a crop larger than the image: 82 % black pixels, silently. Refused instead."""
    with pytest.raises(
        CompressflowError, match=r"dataset.preprocess.crop 32 is larger than the resized image.*fix: use a crop of at most 16"
    ):
        pp.resolve({"input_size": 8, "preprocess": {"preset": "imagenet", "resize": resize, "crop": 32}})
    assert pp.resolve({"input_size": 8, "preprocess": {"preset": "imagenet", "resize": resize, "crop": 16}})["crop"] == 16


def test_streamed_splits_equal_in_memory_and_read_only_their_rows(tmp_path):
    outputs = {n: tmp_path / f"{n}.pt" for n in FRACTIONS} | {f"{n}_cache": tmp_path / f"{n}.npy" for n in FRACTIONS}
    data.write_splits("digits", 16, FRACTIONS, 0, outputs)
    memory = data.prepare("digits", 16, FRACTIONS, 0)
    test = data.load_split(outputs["test"])
    cache = test["x"]
    assert isinstance(cache, data.ImageCache) and np.load(outputs["test_cache"], mmap_mode="r").shape == tuple(cache.shape)
    assert cache.bytes_read == 0  # opening a split reads no image
    item = 3 * 16 * 16
    assert torch.equal(cache[10:20], memory["test"]["x"][10:20]) and cache.bytes_read == 10 * item
    idx = torch.tensor([7, 3, 300])
    assert torch.equal(cache[idx], memory["test"]["x"][idx]) and cache.bytes_read == 13 * item
    streamed = list(data.batches(test, 64, limit=100))
    assert cache.bytes_read == (13 + 100) * item  # the DataLoader read exactly the 100 rows asked for...
    assert [len(y) for _, y in streamed] == [64, 36]
    direct = data.to_input(memory["test"]["x"][:100])
    assert torch.equal(torch.cat([x for x, _ in streamed]), direct)  # ...in order
    assert torch.equal(test["y"], memory["test"]["y"]) and test["preprocess"] == pp.resolve({"input_size": 16})
    with open(outputs["test_cache"], "r+b") as f:
        f.truncate(1000)
    with pytest.raises(CompressflowError, match="truncated"):
        data.load_split(outputs["test"])


def test_training_order_and_augmentation_are_seeded_with_any_workers():
    from compressflow import train

    split = {k: v[:96] if isinstance(v, torch.Tensor) else v for k, v in data.prepare("digits", 8, FRACTIONS, 0)["train"].items()}

    def fitted(**kw):
        torch.manual_seed(0)
        model = tiny_model(10)
        train.fit(model, split, epochs=1, lr=0.05, batch_size=32, seed=3, **kw)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    aug = {"scale": [0.5, 1.0], "hflip": True}
    plain, augmented = fitted(), fitted(augment=aug)
    assert torch.equal(augmented, fitted(augment=aug, workers=1))
    assert not torch.equal(plain, augmented)
    x = split["x"][:4]
    assert torch.equal(data.augment(x, None, torch.Generator()), x)


def test_near_chance_is_flagged_in_the_log_and_the_summary(tmp_path, capsys):
    assert stats.near_chance(17, 100, 10) and stats.near_chance(11, 100, 10)  # 0.167 on 10 classes: the note's case
    assert not stats.near_chance(95, 100, 10) and not stats.near_chance(30, 100, 1000)
    from compressflow import artifacts, models, recipes
    from compressflow.steps.evaluate import evaluate

    d = tmp_path / "results" / "mynet" / "fp32"
    d.mkdir(parents=True)
    torch.manual_seed(0)
    artifacts.save_model(models.build("resnet18", 10).eval(), recipes.base_recipe("resnet18", 10), d / "model.pt")
    test = data.prepare("digits", 8, FRACTIONS, 0)["test"]
    from compressflow import files

    files.save_tensors(test, tmp_path / "test.pt")
    outputs = {"logits": d / "test_logits.pt", "metrics": d / "metrics.json"}
    lat = {"input_size": 8, "warmup": 1, "iters": 2}
    evaluate(
        {"model": d / "model.pt", "test": tmp_path / "test.pt"},
        outputs,
        {"batch_size": 128, "threads": 1, "latency": lat, "device": "cpu"},
        1,
    )
    err = capsys.readouterr().err
    assert "WARNING: FP32 accuracy of mynet is near chance" in err and "dataset.preprocess" in err
    metrics = json.loads(outputs["metrics"].read_text())
    assert "near chance" in metrics["warning"]
    row = {"model": "mynet", "variant": "fp32", "runtime": "pytorch", "top1": metrics["top1"], "n_test": metrics["n_test"]}
    good = dict(row, model="good", top1=0.97)
    df = pd.DataFrame([row, good])
    df.attrs["n_classes"] = 10
    lines = report.near_chance_lines(df)
    assert "FP32 accuracy of mynet is near chance" in lines and "good" not in lines


def _digit_tree(root, per_class=40, seed=0):
    """The embedded digits upscaled to varied sizes (28..72 px, non-square) as PNG and JPEG class folders."""
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    bunch = load_digits()
    counts = dict.fromkeys(range(10), 0)
    for img, label in zip(bunch.images, bunch.target, strict=True):
        if counts[label] >= per_class:
            continue
        counts[label] += 1
        h, w = int(rng.integers(28, 72)), int(rng.integers(28, 72))
        pil = Image.fromarray((img / 16 * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR)
        folder = root / f"digit{label}"
        folder.mkdir(parents=True, exist_ok=True)
        pil.save(folder / f"{counts[label]}.{'jpg' if counts[label] % 3 == 0 else 'png'}", quality=95)


def _imagefolder_config(root, checkpoint, resize: int) -> dict:
    """A ResNet18 checkpoint on an ImageFolder, imagenet preset cropped to 32 px; nothing deployed, no variant."""
    return {
        "seed": 0,
        "dataset": {
            "kind": "imagefolder",
            "root": str(root),
            "input_size": 32,
            "preprocess": {"preset": "imagenet", "resize": resize, "crop": 32},
        },
        "models": {"resnet18": {"arch": "resnet18", "checkpoint": str(checkpoint), "train": {"epochs": 1, "lr": 0.1, "batch_size": 32}}},
        "variants": {},
        "deploy": {"variants": [], "tensorrt": {"mode": "off"}},
        "evaluate": {"batch_size": 64, "threads": 1, "latency": {"input_size": 32, "warmup": 1, "iters": 2}},
        "benchmark": {"batch_sizes": [1], "warmup": 1, "iters": 2, "input_size": 32, "threads": 1},
        "report": {"max_accuracy_drop": 0.01},
    }


@torch.no_grad()
def _fit_without_sgd(net, ds):
    """A "trained" checkpoint whose top-1 does not depend on how far a few SGD epochs get on a given CPU:
    a seeded random ResNet18 with BatchNorm statistics from the data and a ridge-regression classifier on its
    pooled features (closed form). Its top-1 on these images is near 1.0 on any CPU; a wrong preprocess moves
    the features, and so the workflow's top-1, away from it."""
    torch.manual_seed(0)
    x, y = next(iter(torch.utils.data.DataLoader(ds, batch_size=len(ds))))
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average: one pass over all images sets the statistics
    fc, net.fc = net.fc, torch.nn.Identity()
    net.train()(x)
    feats = net.eval()(x).double()
    feats = torch.cat([feats, torch.ones(len(feats), 1, dtype=torch.float64)], 1)
    onehot = torch.nn.functional.one_hot(y, 10).double()
    gram = feats.T @ feats
    ridge = 1e-3 * gram.diagonal().mean() * torch.eye(len(gram), dtype=torch.float64)
    w = torch.linalg.solve(gram + ridge, feats.T @ onehot)
    fc.weight.copy_(w[:-1].T.float())
    fc.bias.copy_(w[-1].float())
    net.fc = fc
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 0.1
    return net.eval()


def test_outside_trained_checkpoint_scores_what_torchvision_scores(tmp_path):
    """A torchvision ResNet18 trained outside with its own transforms, evaluated by the workflow with the
    matching dataset.preprocess: the reported top-1 is torchvision's top-1 on the same test files."""
    from torchvision import datasets, models
    from torchvision import transforms as T

    root = tmp_path / "images"
    _digit_tree(root)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    tf = T.Compose([T.Resize(40), T.CenterCrop(32), T.ToTensor(), T.Normalize(mean, std)])
    ds = datasets.ImageFolder(root, tf)
    net = _fit_without_sgd(models.resnet18(num_classes=10), ds)
    torch.save(net.state_dict(), tmp_path / "outside.pt")
    cfg = _imagefolder_config(root, tmp_path / "outside.pt", resize=40)
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    work = tmp_path / "run"
    snakemake(work, "--cores", "2", "results/resnet18/fp32/metrics.json", config=tmp_path / "cfg.yaml")
    top1 = json.loads((work / "results/resnet18/fp32/metrics.json").read_text())["top1"]
    split = data.load_split(work / "results/data/test.pt")
    assert split["preprocess"]["mean"] == mean and len(split["files"]) == len(split["y"])
    with torch.no_grad():
        xs = torch.stack([tf(Image.open(root / f["path"]).convert("RGB")) for f in split["files"]])
        theirs = (net(xs).argmax(1) == torch.tensor([f["label"] for f in split["files"]])).float().mean().item()
    print(f"workflow top1 {top1:.4f}, torchvision top1 {theirs:.4f}", file=sys.stderr)
    assert theirs > 0.9  # a fitted model (near 1.0 on any CPU): a wrong preprocess would show
    assert abs(top1 - theirs) <= 0.005


def test_too_few_images_per_class_splits_seeded_but_unstratified(capsys):
    y = torch.arange(50).repeat(2)  # 50 classes, 2 images each: no stratified 4-way split exists
    parts = data.split_indices(y, FRACTIONS, 0)
    assert "cannot be stratified" in capsys.readouterr().err
    joined = np.sort(np.concatenate(list(parts.values())))
    assert np.array_equal(joined, np.arange(100)) and all(len(p) for p in parts.values())
    assert all(np.array_equal(a, b) for a, b in zip(parts.values(), data.split_indices(y, FRACTIONS, 0).values(), strict=True))


@pytest.mark.slow
def test_thousand_synsets_imagenet_preset_through_ptq_and_openvino_int8(tmp_path):
    """1,000 synset folders (2 small images each), a 1000-class checkpoint, the imagenet preset (crop
    shrunk to 32): fp32 -> PTQ and OpenVINO INT8 end to end, each reported on the same test files."""
    from torchvision import models

    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for i in range(1000):
        folder = root / f"n{1440764 + 7 * i:08d}"
        folder.mkdir(parents=True)
        for j in range(2):
            h, w = int(rng.integers(36, 60)), int(rng.integers(36, 60))
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{j}.JPEG")
    torch.manual_seed(0)
    torch.save(models.resnet18(num_classes=1000).state_dict(), tmp_path / "r18.pt")
    cfg = _imagefolder_config(root, tmp_path / "r18.pt", resize=36)
    cfg["variants"] = {"ptq-x86": {"from": "fp32", "technique": "ptq", "backend": "x86", "calib_size": 64}}
    cfg["deploy"] = {"variants": ["fp32"], "onnxruntime": {"enabled": False}, "openvino": {"qdq": False}, "tensorrt": {"mode": "off"}}
    cfg["evaluate"] = {"batch_size": 128, "threads": 2, "latency": {"input_size": 32, "warmup": 1, "iters": 2}}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    work = tmp_path / "run"
    targets = ["results/resnet18/ptq-x86/metrics.json", "results/resnet18/fp32/openvino-int8/metrics.json"]
    snakemake(work, "--cores", "2", *targets, config=tmp_path / "cfg.yaml", timeout=3000)
    split = data.load_split(work / "results/data/test.pt")
    assert len(split["classes"]) == 1000 and split["preprocess"]["crop"] == 32 and split["x"].shape[1:] == (3, 32, 32)
    for t in targets:
        m = json.loads((work / t).read_text())
        assert m["n_test"] == len(split["y"]) and 0 <= m["top1"] <= 1
    fp32 = json.loads((work / "results/resnet18/fp32/metrics.json").read_text())
    assert "near chance" in fp32["warning"]  # random weights on noise: the warning must fire


def test_rebuilt_splits_keep_their_bytes_and_mtimes(tmp_path):
    """prepare_data run again writes identical metadata and caches, kept as they were: nothing downstream reruns."""
    import os

    outputs = {n: tmp_path / f"{n}.pt" for n in FRACTIONS} | {f"{n}_cache": tmp_path / f"{n}.npy" for n in FRACTIONS}
    data.write_splits("digits", 8, FRACTIONS, 0, outputs)
    before = {k: (os.stat(v).st_mtime_ns, v.read_bytes()) for k, v in outputs.items()}
    for v in outputs.values():
        os.utime(v, ns=(1, 1))
    data.write_splits("digits", 8, FRACTIONS, 0, outputs)
    assert all(os.stat(v).st_mtime_ns == 1 and v.read_bytes() == before[k][1] for k, v in outputs.items())
