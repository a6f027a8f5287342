def parent_outputs(wildcards):
    """The parent's model and test logits, so agreement and speed-up compare like with like."""
    if wildcards.variant == ROOT:
        return {}
    parent = parent_of(wildcards.variant)
    return {
        "parent_model": f"results/{wildcards.model}/{parent}/model.pt",
        "parent_logits": f"results/{wildcards.model}/{parent}/test_logits.pt",
    }


rule evaluate:
    input:
        unpack(parent_outputs),
        model="results/{model}/{variant}/model.pt",
        test=rules.prepare_data.output.test,
    output:
        metrics="results/{model}/{variant}/metrics.json",
        logits="results/{model}/{variant}/test_logits.pt",
        provenance="results/{model}/{variant}/eval_provenance.json",
    wildcard_constraints:
        variant=alternation([ROOT, *VARIANTS]),
    params:
        batch_size=config["evaluate"]["batch_size"],
        threads=config["evaluate"]["threads"],
        latency=config["evaluate"]["latency"],
        seed=config["seed"],
    # Timing jobs take every core they are given, so nothing else runs beside them.
    threads: workflow.cores
    log:
        "logs/{model}/{variant}/evaluate.log",
    benchmark:
        "results/benchmarks/{model}/{variant}/evaluate.tsv"
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/evaluate.py"
