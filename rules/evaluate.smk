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
    # Times nothing (benchmark_artifact times every artifact): one core.
    threads: 1
    params:
        **accuracy_params(),
    script:
        "../scripts/evaluate.py"
