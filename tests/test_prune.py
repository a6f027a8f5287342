"""Pruning: real shape changes, exact reload through the recipe, true sparsity, one-line errors."""

import copy
from pathlib import Path

import pytest
import torch
import yaml

from compressflow import artifacts, files, fusion, models, prune, recipes
from compressflow import config as cfg
from compressflow.errors import CompressflowError
from compressflow.steps.prune_channels import prune_channels as prune_channels_step
from compressflow.steps.prune_l1 import prune_l1 as prune_l1_step
from tests.conftest import REPO, digits_splits

SIZE = 16


def _model(arch, fused=False, seed=0):
    torch.manual_seed(seed)
    model = models.build(arch, 10).eval()
    recipe = recipes.base_recipe(arch, 10)
    if fused:
        model, pairs = fusion.fold_bn(model)
        recipe = recipes.with_transform(recipe, {"kind": "fold_bn", "pairs": pairs})
    with torch.no_grad():  # non-trivial BN statistics, so a wrong rebuild or load would show in the logits
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model, recipe


def test_channel_pruning_shrinks_params_macs_and_next_layer_inputs():
    model, _ = _model("resnet18")
    before = prune.count_macs_params(model, SIZE)
    prune.prune_channels(model, ratio=0.5, input_size=SIZE)
    after = prune.count_macs_params(model, SIZE)
    assert after["params"] < 0.35 * before["params"] and after["macs"] < 0.35 * before["macs"]
    assert model.conv1.out_channels == 32 and model.bn1.num_features == 32
    assert model.layer1[0].conv1.in_channels == 32  # the next layer's inputs shrank with it
    assert model.layer2[0].downsample[0].out_channels == model.layer2[0].conv2.out_channels  # residual add stays consistent
    assert model.fc.out_features == 10 and model.fc.in_features == 256  # classifier keeps its classes
    assert model(torch.zeros(2, 3, SIZE, SIZE)).shape == (2, 10)


def test_mobilenet_depthwise_groups_follow_channels():
    model, _ = _model("mobilenet_v2")
    prune.prune_channels(model, ratio=0.5, input_size=SIZE, importance="l1")
    depthwise = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert depthwise and all(m.groups == m.in_channels == m.out_channels for m in depthwise)
    assert model.features[0][0].out_channels == 16


@pytest.mark.parametrize("arch,fused", [("resnet18", False), ("mobilenet_v2", False), ("resnet18", True)])
def test_pruned_model_reloads_weights_only_with_identical_logits(arch, fused, tmp_path):
    model, recipe = _model(arch, fused)
    prune.prune_channels(model, ratio=0.5, input_size=SIZE, iterative_steps=2)
    recipe = recipes.with_transform(recipe, {"kind": "prune_channels", "shapes": prune.record_shapes(model)})
    path = tmp_path / "model.pt"
    artifacts.save_model(model, recipe, path)
    torch.load(path, weights_only=True)  # plain data only
    loaded, loaded_recipe = artifacts.load_model(path)
    x = torch.randn(4, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert [t["kind"] for t in loaded_recipe["transforms"]] == (["fold_bn"] if fused else []) + ["prune_channels"]
    assert models.count_params(loaded) == models.count_params(model)


def test_ignored_layers_are_kept_and_unknown_names_are_one_line():
    model, _ = _model("resnet18")
    prune.prune_channels(model, ratio=0.5, input_size=SIZE, ignored_layers=["layer4.1.conv1"])
    assert model.layer4[1].conv1.out_channels == 512 and model.layer4[1].conv2.in_channels == 512
    with pytest.raises(CompressflowError, match="'layer9.conv1', which is not a module") as exc:
        prune.prune_channels(_model("resnet18")[0], ratio=0.5, input_size=SIZE, ignored_layers=["layer9.conv1"])
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"ratio": 0.0}, "ratio=0.0"),
        ({"ratio": 1.0}, "ratio=1.0"),
        ({"ratio": 1.5}, "ratio=1.5"),
        ({"ratio": 0.5, "iterative_steps": 0}, "iterative_steps=0"),
        ({"ratio": 0.5, "importance": "taylor"}, "importance 'taylor'"),
    ],
)
def test_bad_channel_knobs_are_one_line(kwargs, needle):
    with pytest.raises(CompressflowError, match=needle) as exc:
        prune.prune_channels(_model("resnet18")[0], input_size=SIZE, **kwargs)
    assert "\n" not in str(exc.value)


def test_rebuild_rejects_a_recipe_for_another_tree():
    model, _ = _model("resnet18")
    with pytest.raises(CompressflowError, match="features.0.0"):
        prune.rebuild(
            model, {"kind": "prune_channels", "shapes": {"features.0.0": {"type": "Conv2d", "in": 3, "out": 8, "groups": 1, "bias": False}}}
        )


def test_l1_sparsity_matches_amount_and_is_permanent():
    model, _ = _model("mobilenet_v2")
    dense = prune.storage_sizes(model)
    layers = prune.l1_unstructured(model, 0.5)
    prune.make_permanent(layers)
    assert not any(k.endswith("_orig") or k.endswith("_mask") for k in model.state_dict())
    s = prune.sparsity(model)
    assert abs(s["sparsity_prunable"] - 0.5) < 1e-3
    assert 0.4 < s["sparsity_all_params"] < 0.55  # BN and bias parameters are not pruned (BN betas start at 0)
    assert set(s["per_layer"]) == {n for n, _ in prune.prunable_weights(model)}
    sizes = prune.storage_sizes(model)
    assert sizes["dense_state_dict_bytes"] == pytest.approx(dense["dense_state_dict_bytes"], rel=1e-3)  # same dense tensors
    assert sizes["gzip6_dense_state_dict_bytes"] < 0.8 * dense["gzip6_dense_state_dict_bytes"]  # zeros compress
    assert sizes["sparse_coo_state_dict_bytes"] > sizes["dense_state_dict_bytes"]  # COO indices cost more than they save at 50%
    assert sizes["pruned_weights_nnz"] == s["prunable_numel"] - s["prunable_zeros"]


@pytest.mark.parametrize("amount", [0, 1, -0.1])
def test_bad_l1_amount(amount):
    with pytest.raises(CompressflowError, match=f"amount={amount}"):
        prune.l1_unstructured(_model("resnet18")[0], amount)


def _tiny_splits():
    splits = digits_splits(SIZE)
    small = {k: v[:96] if isinstance(v, torch.Tensor) else v for k, v in splits["train"].items()}
    return small, splits["val"]


def _step_inputs(tmp_path) -> dict:
    """train/val splits and an untrained MobileNetV2 parent on disk: the inputs of a pruning step."""
    trainset, val = _tiny_splits()
    files.save_tensors(trainset, tmp_path / "train.pt")
    files.save_tensors(val, tmp_path / "val.pt")
    model, recipe = _model("mobilenet_v2")
    artifacts.save_model(model, recipe, tmp_path / "parent.pt")
    return {"model": str(tmp_path / "parent.pt"), "train": str(tmp_path / "train.pt"), "val": str(tmp_path / "val.pt")}


def test_channel_step_writes_stats_and_a_reloadable_model(tmp_path):
    inputs = _step_inputs(tmp_path)
    out = {"model": str(tmp_path / "p" / "model.pt"), "stats": str(tmp_path / "p" / "prune_stats.json")}
    params = {
        "knobs": {"ratio": 0.5, "finetune_epochs": 1, "lr": 0.01, "iterative_steps": 1, "ignored_layers": [], "importance": "l2"},
        "train": {"batch_size": 32, "weight_decay": 5e-4, "amp": False},
        "seed": 0,
        "input_size": SIZE,
        "latency_input": 32,
        "device": "cpu",
    }
    prune_channels_step(inputs, out, params, 1)
    stats = files.read_json(out["stats"])
    assert stats["macs_ratio"] < 0.5 and stats["params_ratio"] < 0.5 and stats["macs_before_latency_input"] > stats["macs_before"]
    assert len(stats["finetune_history"]) == 1
    loaded, rec = artifacts.load_model(out["model"])
    assert rec["transforms"][-1]["kind"] == "prune_channels"
    assert models.count_params(loaded) == stats["params_after"]


def test_l1_step_records_sparsity_and_note(tmp_path):
    inputs = _step_inputs(tmp_path)
    out = {"model": str(tmp_path / "l1" / "model.pt"), "sparsity": str(tmp_path / "l1" / "sparsity.json")}
    params = {
        "knobs": {"amount": 0.6, "finetune_epochs": 1, "lr": 0.01},
        "train": {"batch_size": 48, "weight_decay": 5e-4, "amp": False},
        "seed": 0,
        "device": "cpu",
    }
    prune_l1_step(inputs, out, params, 1)
    stats = files.read_json(out["sparsity"])
    assert "latency does not improve" in stats["note"]
    assert (
        stats["storage"]["dense_state_dict_bytes"] > 0
        and stats["parent_storage"]["pruned_weights_nnz"] > stats["storage"]["pruned_weights_nnz"]
    )
    loaded, _ = artifacts.load_model(out["model"])
    # fine-tuning ran with the masks on, so the zeros survived it
    assert abs(prune.sparsity(loaded)["sparsity_prunable"] - 0.6) < 1e-3 and abs(stats["sparsity_prunable"] - 0.6) < 1e-3


def _config_with(variant):
    conf = yaml.safe_load((REPO / "tests" / "tiny_config.yaml").read_text())
    conf["variants"] = {"v": variant}
    return conf


@pytest.mark.parametrize(
    "variant,needle",
    [
        ({"from": "fp32", "technique": "prune_channels", "ratio": 1.2}, "variants.v.ratio"),
        ({"from": "fp32", "technique": "prune_channels", "ratio": 0}, "variants.v.ratio"),
        ({"from": "fp32", "technique": "prune_channels", "ratio": 0.5, "iterative_steps": 0}, "variants.v.iterative_steps"),
        ({"from": "fp32", "technique": "prune_channels", "ratio": 0.5, "importance": "taylor"}, "variants.v.importance"),
        ({"from": "fp32", "technique": "prune_l1", "amount": 1}, "variants.v.amount"),
        ({"from": "fp32", "technique": "prune_l1", "amount": 0.5, "ratio": 0.5}, "unknown key"),
    ],
)
def test_schema_rejects_bad_prune_knobs(variant, needle):
    with pytest.raises(CompressflowError, match=needle) as exc:
        cfg.check_all(_config_with(variant), REPO / "config" / "schema.yaml")
    assert "\n" not in str(exc.value)


def test_schema_accepts_good_prune_variants():
    conf = _config_with({"from": "fp32", "technique": "prune_channels", "ratio": 0.5, "ignored_layers": ["layer4"], "iterative_steps": 2})
    conf["variants"]["v/l1"] = {"from": "v", "technique": "prune_l1", "amount": 0.3}
    cfg.check_all(copy.deepcopy(conf), Path(REPO / "config" / "schema.yaml"))


def test_fusing_a_pruned_model_replays_both_transforms(tmp_path):
    model, recipe = _model("resnet18")
    prune.prune_channels(model, ratio=0.5, input_size=SIZE)
    recipe = recipes.with_transform(recipe, {"kind": "prune_channels", "shapes": prune.record_shapes(model)})
    reference = copy.deepcopy(model)
    fused, pairs = fusion.fold_bn(model)
    artifacts.save_model(fused, recipes.with_transform(recipe, {"kind": "fold_bn", "pairs": pairs}), tmp_path / "model.pt")
    loaded, _ = artifacts.load_model(tmp_path / "model.pt")
    x = torch.randn(4, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.equal(fused(x), loaded(x))
        assert (reference(x) - loaded(x)).abs().max() < 1e-4
