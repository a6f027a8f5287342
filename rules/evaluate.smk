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
    # Timing jobs take every core they are given, so nothing else runs beside them.
    threads: workflow.cores
    params:
        batch_size=config["evaluate"]["batch_size"],
        threads=config["evaluate"]["threads"],
        latency=canonical(config["evaluate"]["latency"]),
        seed=config["seed"],
    script:
        "../scripts/evaluate.py"
