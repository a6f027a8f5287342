"""Knowledge distillation (Hinton et al.): a student learns from labels and the teacher's softened logits.

The teacher is the variant's parent. ``alpha = 0`` is the ablation (the same student trained on
labels alone): it never runs the teacher, so its cost and result are those of plain training.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from compressflow import artifacts, models, recipes, train
from compressflow.config import check_distill as check_variants  # noqa: F401 (the config-time check lives with the others)
from compressflow.config import same_student as _same_student
from compressflow.errors import CompressflowError


def check_knobs(temperature: float, alpha: float) -> None:
    if not temperature > 0:
        raise CompressflowError(f"distill temperature={temperature}", "use a temperature > 0 (4 is usual)")
    if not 0 <= alpha <= 1:
        raise CompressflowError(f"distill alpha={alpha}", "use alpha in [0, 1] (0 = labels only, 1 = teacher only)")


def kd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, y: torch.Tensor, *, temperature: float, alpha: float
) -> torch.Tensor:
    """alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, y).

    T^2 keeps the soft term's gradient scale independent of T.
    """
    ce = F.cross_entropy(student_logits, y)
    if alpha == 0:
        return ce
    t = temperature
    kl = F.kl_div(
        F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1), reduction="batchmean", log_target=True
    )
    return alpha * t * t * kl + (1 - alpha) * ce


def make_loss(teacher: nn.Module | None, *, temperature: float, alpha: float):
    """A ``train.fit`` loss; with alpha 0 the teacher is never called."""
    check_knobs(temperature, alpha)
    if alpha == 0:
        return train.cross_entropy
    if teacher is None:
        raise CompressflowError("distillation with alpha > 0 needs a teacher", "give the variant a 'from:' parent")
    teacher.eval()

    def loss(model, x, y):
        with torch.no_grad():
            t_logits = teacher(x)
        return kd_loss(model(x), t_logits, y, temperature=temperature, alpha=alpha)

    return loss


def student_model(teacher_recipe: dict, num_classes: int, *, student: dict | None, student_path=None) -> tuple[nn.Module, dict]:
    """The initial student: a fresh ``student`` architecture, or the model stored at ``student_path``."""
    if student_path is not None:
        model, recipe = artifacts.load_model(student_path)
        return model, recipe
    if not student or "arch" not in student:
        raise CompressflowError("distill needs a student", "set student: {arch: ..., arch_kwargs: {...}} or student_from: <variant>")
    kwargs = dict(student.get("arch_kwargs") or {})
    if not teacher_recipe.get("transforms") and _same_student(student, teacher_recipe["arch"], teacher_recipe.get("arch_kwargs", {})):
        raise CompressflowError(
            f"distill student {student['arch']} {kwargs} is the same network as its teacher",
            "pick a smaller student (e.g. mobilenet_v2 with arch_kwargs {width_mult: 0.5}) or use student_from",
        )
    recipe = recipes.base_recipe(student["arch"], num_classes, kwargs)
    return models.build(student["arch"], num_classes, **kwargs), recipe
