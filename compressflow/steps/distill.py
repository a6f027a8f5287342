"""Rule ``distill``: knowledge distillation of a student from the variant's parent."""

from __future__ import annotations

import sys

import torch

from compressflow import artifacts, data, device, files, models, train
from compressflow import distill as kd
from compressflow import evaluate as ev
from compressflow.errors import CompressflowError


def distill(inputs, outputs, params, threads):
    k, t, seed = params["knobs"], params["train"], params["seed"]
    temperature, alpha = float(k["temperature"]), float(k["alpha"])
    kd.check_knobs(temperature, alpha)
    train.seed_everything(seed, threads)
    teacher, teacher_recipe = artifacts.load_model(inputs["model"])
    trainset, val = data.load_split(inputs["train"]), data.load_split(inputs["val"])
    classes = len(trainset["classes"])
    model, recipe = kd.student_model(teacher_recipe, classes, student=k.get("student"), student_path=inputs.get("student"))
    x, _ = next(data.batches(val, 2))
    with torch.no_grad():
        n_out = model.eval()(x).shape[1]
    if n_out != classes:
        raise CompressflowError(
            f"distill student has {n_out} outputs but the data has {classes} classes", "start from a student of this dataset"
        )
    dev = device.use(params["device"])
    model.to(dev)
    if not device.is_int8(teacher):
        teacher.to(dev)
    elif dev.type != "cpu" and alpha > 0:
        raise CompressflowError("distill: an INT8 teacher runs only on the CPU", "set device: cpu, or distill from a float parent")
    top1_student_init = ev.topk(ev.predict(model, val), val["y"], 1)
    history = train.fit(
        model,
        trainset,
        epochs=k["epochs"],
        lr=k["lr"],
        batch_size=t["batch_size"],
        seed=seed,
        weight_decay=t["weight_decay"],
        loss=kd.make_loss(teacher if alpha > 0 else None, temperature=temperature, alpha=alpha),
        desc=f"distill T={temperature:g} alpha={alpha:g}",
        augment=t.get("augment"),
        amp=t["amp"],
    )
    top1 = ev.topk(ev.predict(model, val), val["y"], 1)
    top1_teacher = ev.topk(ev.predict(teacher, val), val["y"], 1)
    print(f"distill: val top1 student {top1:.4f} (teacher {top1_teacher:.4f}, student at start {top1_student_init:.4f})", file=sys.stderr)
    artifacts.save_model(model.cpu(), recipe, outputs["model"])
    files.write_json(
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
