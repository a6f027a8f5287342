"""Knowledge distillation (Hinton et al.): a student learns from labels and the teacher's softened logits.

The teacher is the variant's parent. ``alpha = 0`` is the ablation (the same student trained on
labels alone): it never runs the teacher, so its cost and result are those of plain training.
"""

from __future__ import annotations

import sys

import torch
from torch import nn
from torch.nn import functional as F

from compressflow import data, io, models, recipes, train
from compressflow import evaluate as ev
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
        model, recipe = io.load_model(student_path)
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


def step_distill(inputs, outputs, params, threads):
    k, t, seed = params["knobs"], params["train"], params["seed"]
    temperature, alpha = float(k.get("temperature", 4.0)), float(k.get("alpha", 0.7))
    check_knobs(temperature, alpha)
    train.seed_everything(seed, threads)
    teacher, teacher_recipe = io.load_model(inputs["model"])
    trainset, val = data.load_split(inputs["train"]), data.load_split(inputs["val"])
    classes = len(trainset["classes"])
    model, recipe = student_model(teacher_recipe, classes, student=k.get("student"), student_path=inputs.get("student"))
    x, _ = next(data.batches(val, 2))
    with torch.no_grad():
        n_out = model.eval()(x).shape[1]
    if n_out != classes:
        raise CompressflowError(
            f"distill student has {n_out} outputs but the data has {classes} classes", "start from a student of this dataset"
        )
    top1_student_init = ev.topk(ev.predict(model, val), val["y"], 1)
    history = train.fit(
        model,
        trainset,
        epochs=k["epochs"],
        lr=k["lr"],
        batch_size=t["batch_size"],
        seed=seed,
        weight_decay=t.get("weight_decay", 5e-4),
        loss=make_loss(teacher if alpha > 0 else None, temperature=temperature, alpha=alpha),
        desc=f"distill T={temperature:g} alpha={alpha:g}",
    )
    top1 = ev.topk(ev.predict(model, val), val["y"], 1)
    top1_teacher = ev.topk(ev.predict(teacher, val), val["y"], 1)
    print(f"distill: val top1 student {top1:.4f} (teacher {top1_teacher:.4f}, student at start {top1_student_init:.4f})", file=sys.stderr)
    io.save_model(model, recipe, outputs["model"])
    io.write_json(
        {
            "temperature": temperature,
            "alpha": alpha,
            "teacher_forward": alpha > 0,
            "student_recipe": recipe,
            "student_from": k.get("student_from"),
            "teacher_recipe": teacher_recipe,
            "student_params": models.count_params(model),
            "teacher_params": models.count_params(teacher),
            "val_top1": {"student_start": top1_student_init, "student": top1, "teacher": top1_teacher},
            "history": history,
        },
        outputs["stats"],
    )
