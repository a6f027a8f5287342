rule fuse:
    input:
        model=parent_model,
        val=split("val"),
    output:
        model="results/{model}/{variant}/model.pt",
        provenance="results/{model}/{variant}/provenance.json",
    log:
        "logs/{model}/{variant}/fuse.log",
    benchmark:
        "results/benchmarks/{model}/{variant}/fuse.tsv"
    wildcard_constraints:
        variant=alternation(variants_of("fuse")),
    conda:
        "../envs/torch.yaml"
    params:
        tolerance=lambda w: knobs(w)["tolerance"],
        seed=config["seed"],
    script:
        "../scripts/fuse.py"
