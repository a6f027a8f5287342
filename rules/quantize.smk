rule dynamic:
    input:
        model=parent_model,
    output:
        model="results/{model}/{variant}/model.pt",
        provenance="results/{model}/{variant}/provenance.json",
    log:
        "logs/{model}/{variant}/dynamic.log",
    benchmark:
        "results/benchmarks/{model}/{variant}/dynamic.tsv"
    wildcard_constraints:
        variant=alternation(variants_of("dynamic")),
    conda:
        "../envs/torch.yaml"
    params:
        dtype=lambda w: knobs(w)["dtype"],
        seed=config["seed"],
    script:
        "../scripts/dynamic.py"


rule ptq_calibrate:
    input:
        model=parent_model,
        calib=split("calib"),
    output:
        calibrated="results/{model}/{variant}/calibrated.pt",
        calibration="results/{model}/{variant}/calibration.json",
        provenance="results/{model}/{variant}/calibrate_provenance.json",
    log:
        "logs/{model}/{variant}/ptq_calibrate.log",
    benchmark:
        "results/benchmarks/{model}/{variant}/ptq_calibrate.tsv"
    wildcard_constraints:
        variant=alternation(variants_of("ptq")),
    conda:
        "../envs/torch.yaml"
    params:
        backend=lambda w: calib_knobs(w)["backend"],
        observer=lambda w: calib_knobs(w)["observer"],
        activation=lambda w: calib_knobs(w)["activation"],
        per_channel=lambda w: calib_knobs(w)["per_channel"],
        calib_size=lambda w: calib_knobs(w)["calib_size"],
        percentile=lambda w: calib_knobs(w)["percentile"],
        seed=config["seed"],
    script:
        "../scripts/ptq_calibrate.py"


rule ptq:
    input:
        calibrated=rules.ptq_calibrate.output.calibrated,
        calib=split("calib"),
    output:
        model="results/{model}/{variant}/model.pt",
        provenance="results/{model}/{variant}/provenance.json",
    log:
        "logs/{model}/{variant}/ptq.log",
    benchmark:
        "results/benchmarks/{model}/{variant}/ptq.tsv"
    wildcard_constraints:
        variant=alternation(variants_of("ptq")),
    conda:
        "../envs/torch.yaml"
    params:
        bias_correction=lambda w: knobs(w)["bias_correction"],
        seed=config["seed"],
    script:
        "../scripts/ptq.py"


rule qat:
    input:
        model=parent_model,
        train=split("train"),
    output:
        model="results/{model}/{variant}/model.pt",
        history="results/{model}/{variant}/history.json",
        provenance="results/{model}/{variant}/provenance.json",
    log:
        "logs/{model}/{variant}/qat.log",
    benchmark:
        "results/benchmarks/{model}/{variant}/qat.tsv"
    wildcard_constraints:
        variant=alternation(variants_of("qat")),
    conda:
        "../envs/torch.yaml"
    params:
        backend=lambda w: knobs(w)["backend"],
        per_channel=lambda w: knobs(w)["per_channel"],
        epochs=lambda w: knobs(w)["epochs"],
        lr=lambda w: knobs(w)["lr"],
        batch_size=lambda w: knobs(w)["batch_size"],
        freeze_observers_epoch=lambda w: knobs(w)["freeze_observers_epoch"],
        freeze_bn_epoch=lambda w: knobs(w)["freeze_bn_epoch"],
        seed=seed_of,
    script:
        "../scripts/qat.py"


# Sensitivity is measured on the FP32 baseline: it exists for every model, and prepare_fx fuses
# Conv+BN itself, so the BN-folded parent would give the same numbers. Mixed precision uses it only
# to rank layers; its accuracy budget is checked on the real parent.
rule sensitivity:
    input:
        model=f"results/{{model}}/{ROOT}/model.pt",
        calib=split("calib"),
        val=split("val"),
    output:
        csv="results/{model}/sensitivity/sensitivity.csv",
        plot=report(
            "results/{model}/sensitivity/sensitivity.png", category="Quantization"
        ),
        provenance="results/{model}/sensitivity/provenance.json",
    log:
        "logs/{model}/sensitivity/sensitivity.log",
    benchmark:
        "results/benchmarks/{model}/sensitivity/sensitivity.tsv"
    conda:
        "../envs/torch.yaml"
    params:
        spec=config.get("quantize", {}).get("sensitivity", {}),
        seed=config["seed"],
    script:
        "../scripts/sensitivity.py"


rule mixed:
    input:
        model=parent_model,
        calib=split("calib"),
        val=split("val"),
        sensitivity=rules.sensitivity.output.csv,
    output:
        model="results/{model}/{variant}/model.pt",
        report="results/{model}/{variant}/mixed.json",
        provenance="results/{model}/{variant}/provenance.json",
    log:
        "logs/{model}/{variant}/mixed.log",
    benchmark:
        "results/benchmarks/{model}/{variant}/mixed.tsv"
    wildcard_constraints:
        variant=alternation(variants_of("mixed")),
    conda:
        "../envs/torch.yaml"
    params:
        backend=lambda w: knobs(w)["backend"],
        per_channel=lambda w: knobs(w)["per_channel"],
        observer=lambda w: knobs(w)["observer"],
        calib_size=lambda w: knobs(w)["calib_size"],
        max_accuracy_drop=lambda w: knobs(w)["max_accuracy_drop"],
        keep_first_last=lambda w: knobs(w)["keep_first_last"],
        seed=config["seed"],
    script:
        "../scripts/mixed.py"


rule layer_error:
    input:
        model="results/{model}/{variant}/model.pt",
        parent=parent_model,
        calib=split("calib"),
    output:
        csv="results/{model}/{variant}/layer_error.csv",
        provenance="results/{model}/{variant}/layer_error_provenance.json",
    log:
        "logs/{model}/{variant}/layer_error.log",
    benchmark:
        "results/benchmarks/{model}/{variant}/layer_error.tsv"
    wildcard_constraints:
        variant=alternation(quantized_variants()),
    conda:
        "../envs/torch.yaml"
    params:
        batch_size=64,
        seed=config["seed"],
    script:
        "../scripts/layer_error.py"


# PT2E (torchao), the successor of the torch.ao FX rules above: model.pt is recipe + the calibrated
# prepared graph's state (reloads weights-only, converts on load); program.pt2 is torch.export.save
# of the converted graph; pt2e.json records the Q/DQ count and the untied repeated module calls.
rule ptq_pt2e:
    input:
        model=parent_model,
        calib=split("calib"),
    output:
        model="results/{model}/{variant}/model.pt",
        program="results/{model}/{variant}/program.pt2",
        report="results/{model}/{variant}/pt2e.json",
        provenance="results/{model}/{variant}/provenance.json",
    log:
        "logs/{model}/{variant}/ptq_pt2e.log",
    benchmark:
        "results/benchmarks/{model}/{variant}/ptq_pt2e.tsv"
    wildcard_constraints:
        variant=alternation(variants_of("ptq_pt2e")),
    conda:
        "../envs/torch.yaml"
    params:
        calib_size=lambda w: knobs(w)["calib_size"],
        reduce_range=lambda w: knobs(w)["reduce_range"],
        fp32_layers=lambda w: knobs(w)["fp32_layers"],
        seed=config["seed"],
    script:
        "../scripts/ptq_pt2e.py"


# The successor of mixed: per-unit PT2E sensitivity and the greedy FP32/INT8 search in one job
# (pt2e.json holds both); the artifact is a ptq_pt2e one with the chosen fp32_layers.
rule mixed_pt2e:
    input:
        model=parent_model,
        calib=split("calib"),
        val=split("val"),
    output:
        model="results/{model}/{variant}/model.pt",
        program="results/{model}/{variant}/program.pt2",
        report="results/{model}/{variant}/pt2e.json",
        provenance="results/{model}/{variant}/provenance.json",
    log:
        "logs/{model}/{variant}/mixed_pt2e.log",
    benchmark:
        "results/benchmarks/{model}/{variant}/mixed_pt2e.tsv"
    wildcard_constraints:
        variant=alternation(variants_of("mixed_pt2e")),
    conda:
        "../envs/torch.yaml"
    params:
        calib_size=lambda w: knobs(w)["calib_size"],
        reduce_range=lambda w: knobs(w)["reduce_range"],
        max_accuracy_drop=lambda w: knobs(w)["max_accuracy_drop"],
        keep_first_last=lambda w: knobs(w)["keep_first_last"],
        seed=config["seed"],
    script:
        "../scripts/mixed_pt2e.py"


rule qat_pt2e:
    input:
        model=parent_model,
        train=split("train"),
    output:
        model="results/{model}/{variant}/model.pt",
        program="results/{model}/{variant}/program.pt2",
        report="results/{model}/{variant}/pt2e.json",
        provenance="results/{model}/{variant}/provenance.json",
    log:
        "logs/{model}/{variant}/qat_pt2e.log",
    benchmark:
        "results/benchmarks/{model}/{variant}/qat_pt2e.tsv"
    wildcard_constraints:
        variant=alternation(variants_of("qat_pt2e")),
    conda:
        "../envs/torch.yaml"
    params:
        reduce_range=lambda w: knobs(w)["reduce_range"],
        fp32_layers=lambda w: knobs(w)["fp32_layers"],
        epochs=lambda w: knobs(w)["epochs"],
        lr=lambda w: knobs(w)["lr"],
        batch_size=lambda w: knobs(w)["batch_size"],
        seed=seed_of,
    script:
        "../scripts/qat_pt2e.py"
