"""Distillation: the loss formula, the ablation path, students, and one-line errors."""

import pytest
import torch
import yaml
from torch.nn import functional as F

from compressflow import artifacts, distill, files, models, prune, recipes, train
from compressflow import config as cfg
from compressflow.errors import CompressflowError
from compressflow.steps.distill import distill as distill_step
from tests.conftest import REPO, digits_splits, tiny_model


def _logits(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(8, 5, generator=g) * 3, torch.randn(8, 5, generator=g) * 3, torch.randint(0, 5, (8,), generator=g)


def test_alpha_zero_is_plain_cross_entropy():
    s, t, y = _logits()
    assert torch.equal(distill.kd_loss(s, t, y, temperature=4, alpha=0), F.cross_entropy(s, y))


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_kd_loss_matches_the_formula(temperature):
    s, t, y = _logits(1)
    p_t = torch.softmax(t / temperature, 1)
    kl = (p_t * (p_t.log() - torch.log_softmax(s / temperature, 1))).sum(1).mean()
    expected = 0.7 * temperature**2 * kl + 0.3 * F.cross_entropy(s, y)
    assert distill.kd_loss(s, t, y, temperature=temperature, alpha=0.7).item() == pytest.approx(expected.item(), rel=1e-5)
    # a student that already matches the teacher pays only the label term
    assert distill.kd_loss(t, t, y, temperature=temperature, alpha=0.7).item() == pytest.approx(
        0.3 * F.cross_entropy(t, y).item(), abs=1e-5
    )


def test_t_squared_keeps_the_soft_gradient_scale():
    # For large T the soft term's gradient per logit ~ (s - t) / (N C T^2): the T^2 factor makes it independent of T.
    s, t, y = _logits(2)
    grads = []
    for temperature in (20.0, 40.0):
        s_ = s.clone().requires_grad_(True)
        distill.kd_loss(s_, t, y, temperature=temperature, alpha=1.0).backward()
        grads.append(s_.grad.abs().sum().item())
    assert grads[0] == pytest.approx(grads[1], rel=0.05)


class _Exploding(torch.nn.Module):
    def forward(self, x):
        raise AssertionError("teacher was run")


def test_alpha_zero_never_runs_the_teacher():
    loss = distill.make_loss(_Exploding(), temperature=4, alpha=0)
    assert loss is train.cross_entropy
    model = tiny_model(3)
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    assert torch.isfinite(loss(model, x, y))
    with pytest.raises(AssertionError, match="teacher was run"):
        distill.make_loss(_Exploding(), temperature=4, alpha=0.5)(model, x, y)


def test_teacher_gets_no_gradients():
    torch.manual_seed(0)
    teacher, student = tiny_model(3), tiny_model(3)
    distill.make_loss(teacher, temperature=4, alpha=0.7)(student, torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in student.parameters())


@pytest.mark.parametrize(
    "temperature,alpha,needle", [(0, 0.5, "temperature=0"), (-1, 0.5, "temperature=-1"), (4, 1.5, "alpha=1.5"), (4, -0.1, "alpha=-0.1")]
)
def test_bad_knobs_are_one_line(temperature, alpha, needle):
    with pytest.raises(CompressflowError, match=needle) as exc:
        distill.make_loss(tiny_model(3), temperature=temperature, alpha=alpha)
    assert "\n" not in str(exc.value)


def test_student_equal_to_teacher_is_an_error():
    teacher_recipe = recipes.base_recipe("resnet18", 10)
    with pytest.raises(CompressflowError, match="same network as its teacher") as exc:
        distill.student_model(teacher_recipe, 10, student={"arch": "resnet18", "arch_kwargs": {}})
    assert "\n" not in str(exc.value)
    student, recipe = distill.student_model(teacher_recipe, 10, student={"arch": "mobilenet_v2", "arch_kwargs": {"width_mult": 0.5}})
    assert recipe == recipes.base_recipe("mobilenet_v2", 10, {"width_mult": 0.5})
    assert models.count_params(student) < 1_000_000


def test_missing_teacher_file_is_one_line(tmp_path):
    with pytest.raises(CompressflowError, match="does not exist") as exc:
        artifacts.load_model(tmp_path / "nope" / "model.pt")
    assert "\n" not in str(exc.value)


def _conf(**variants):
    conf = yaml.safe_load((REPO / "tests" / "tiny_config.yaml").read_text())
    conf["variants"] = variants
    return conf


@pytest.mark.parametrize(
    "variant,needle",
    [
        ({"from": "fp32", "technique": "distill", "student": {"arch": "resnet18"}, "epochs": 1, "lr": 0.05}, "same network as the teacher"),
        ({"from": "fp32", "technique": "distill", "student_from": "nope", "epochs": 1, "lr": 0.05}, "student_from names 'nope'"),
    ],
)
def test_config_time_student_checks(variant, needle):
    with pytest.raises(CompressflowError, match=needle) as exc:
        distill.check_variants({"kd": variant}, _conf()["models"], "fp32")
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "variant,needle",
    [
        ({"temperature": 0}, "variants.kd.temperature"),
        ({"alpha": 1.2}, "variants.kd.alpha"),
        ({"student": None, "student_from": "fp32"}, "variants.kd"),
    ],
)
def test_schema_rejects_bad_distill_knobs(variant, needle):
    base = {
        "from": "fp32",
        "technique": "distill",
        "student": {"arch": "mobilenet_v2", "arch_kwargs": {"width_mult": 0.5}},
        "epochs": 1,
        "lr": 0.05,
    }
    base.update(variant)
    base = {k: v for k, v in base.items() if v is not None}
    if "student_from" in variant:  # both student and student_from
        base["student"] = {"arch": "mobilenet_v2"}
    with pytest.raises(CompressflowError, match=needle):
        cfg.check_all(_conf(kd=base), REPO / "config" / "schema.yaml")


def test_distill_step_from_a_pruned_student(tmp_path):
    splits = digits_splits()
    files.save_tensors({k: v[:64] if isinstance(v, torch.Tensor) else v for k, v in splits["train"].items()}, tmp_path / "train.pt")
    files.save_tensors(splits["val"], tmp_path / "val.pt")
    torch.manual_seed(0)
    teacher = models.build("resnet18", 10).eval()
    artifacts.save_model(teacher, recipes.base_recipe("resnet18", 10), tmp_path / "teacher.pt")
    student = models.build("resnet18", 10).eval()
    prune.prune_channels(student, ratio=0.5, input_size=16)
    artifacts.save_model(
        student,
        recipes.with_transform(recipes.base_recipe("resnet18", 10), {"kind": "prune_channels", "shapes": prune.record_shapes(student)}),
        tmp_path / "pruned.pt",
    )
    out = {"model": str(tmp_path / "kd" / "model.pt"), "stats": str(tmp_path / "kd" / "distill.json")}
    params = {
        "knobs": {"student_from": "prune-ch50", "epochs": 1, "lr": 0.05, "temperature": 4, "alpha": 0.7},
        "train": {"batch_size": 32, "weight_decay": 5e-4, "amp": False},
        "seed": 0,
        "device": "cpu",
    }
    distill_step(
        {
            "model": str(tmp_path / "teacher.pt"),
            "student": str(tmp_path / "pruned.pt"),
            "train": str(tmp_path / "train.pt"),
            "val": str(tmp_path / "val.pt"),
        },
        out,
        params,
        1,
    )
    loaded, recipe = artifacts.load_model(out["model"])
    assert recipe["transforms"][-1]["kind"] == "prune_channels"
    assert models.count_params(loaded) == models.count_params(student)
    assert not torch.equal(loaded.conv1.weight, student.conv1.weight)  # it trained
    stats = files.read_json(out["stats"])
    assert stats["teacher_forward"] and len(stats["history"]) == 1
