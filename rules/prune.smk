rule prune_l1:
    input:
        model=parent_model,
        train=split("train"),
        val=split("val"),
    output:
        model="results/{model}/{variant}/model.pt",
        sparsity="results/{model}/{variant}/sparsity.json",
        provenance="results/{model}/{variant}/provenance.json",
    log:
        "logs/{model}/{variant}/prune_l1.log",
    benchmark:
        "results/benchmarks/{model}/{variant}/prune_l1.tsv"
    wildcard_constraints:
        variant=alternation(variants_of("prune_l1")),
    conda:
        "../envs/torch.yaml"
    params:
        knobs=knobs,
        train=lambda w: train_params(w.model),
        seed=seed_of,
    script:
        "../scripts/prune_l1.py"


rule prune_channels:
    input:
        model=parent_model,
        train=split("train"),
        val=split("val"),
    output:
        model="results/{model}/{variant}/model.pt",
        stats="results/{model}/{variant}/prune_stats.json",
        provenance="results/{model}/{variant}/provenance.json",
    log:
        "logs/{model}/{variant}/prune_channels.log",
    benchmark:
        "results/benchmarks/{model}/{variant}/prune_channels.tsv"
    wildcard_constraints:
        variant=alternation(variants_of("prune_channels")),
    conda:
        "../envs/torch.yaml"
    params:
        knobs=knobs,
        train=lambda w: train_params(w.model),
        input_size=DATA_SIZE,
        latency_input=config["evaluate"]["latency"]["input_size"],
        seed=seed_of,
    script:
        "../scripts/prune_channels.py"
