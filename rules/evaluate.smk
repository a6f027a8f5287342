rule evaluate:
    input:
        unpack(parent_outputs),
        model="results/{model}/{variant}/model.pt",
        test=split("test"),
    output:
        metrics="results/{model}/{variant}/metrics.json",
        logits="results/{model}/{variant}/test_logits.pt",
        provenance="results/{model}/{variant}/eval_provenance.json",
    log:
        "logs/{model}/{variant}/evaluate.log",
    benchmark:
        "results/benchmarks/{model}/{variant}/evaluate.tsv"
    wildcard_constraints:
        variant=alternation([ROOT, *VARIANTS]),
    conda:
        "../envs/torch.yaml"
    # No timing here (benchmark_artifact times every artifact): the job needs only its torch threads.
    threads: min(config["evaluate"]["threads"], workflow.cores)
    params:
        batch_size=config["evaluate"]["batch_size"],
        threads=config["evaluate"]["threads"],
        seed=config["seed"],
    script:
        "../scripts/evaluate.py"
