rule train_baseline:
    input:
        unpack(checkpoint_of),
        train=split("train"),
    output:
        model="results/{model}/fp32/model.pt",
        history="results/{model}/fp32/history.json",
        provenance="results/{model}/fp32/provenance.json",
    log:
        "logs/{model}/fp32/train_baseline.log",
    benchmark:
        "results/benchmarks/{model}/fp32/train_baseline.tsv"
    conda:
        "../envs/torch.yaml"
    params:
        spec=lambda w: model_params(w.model),
        seed=config["seed"],
    script:
        "../scripts/train_baseline.py"
