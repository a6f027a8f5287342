"""Rule ``qat_pt2e``: PT2E quantization-aware training (prepare_qat_pt2e -> fine-tune -> convert_pt2e)."""

from __future__ import annotations

from compressflow import artifacts, data, train
from compressflow.quantize import pt2e
from compressflow.quantize.units import input_size_of
from compressflow.steps.ptq_pt2e import save_pt2e


def qat_pt2e(inputs, outputs, params, threads):
    train.seed_everything(params["seed"], threads)
    model, recipe = artifacts.load_model(inputs["model"])
    split = data.load_split(inputs["train"])
    size = input_size_of(split)
    prepared = pt2e.prepare(model, size, qat=True, reduce_range=params["reduce_range"], fp32_layers=params["fp32_layers"])
    history = pt2e.fine_tune_qat(
        prepared, split, epochs=params["epochs"], lr=params["lr"], batch_size=params["batch_size"], seed=params["seed"]
    )
    t = pt2e.transform(size, qat=True, reduce_range=params["reduce_range"], fp32_layers=params["fp32_layers"], epochs=params["epochs"])
    save_pt2e(prepared, recipe, t, outputs, {"history": history})
