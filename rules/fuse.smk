rule fuse_model:
    input:
        model=parent_model,
        val=rules.prepare_data.output.val,
    output:
        model="results/{model}/{variant}/model.pt",
        provenance="results/{model}/{variant}/provenance.json",
    wildcard_constraints:
        variant=alternation(variants_of("fuse")),
    params:
        tolerance=lambda w: knobs(w)["tolerance"],
        seed=config["seed"],
    log:
        "logs/{model}/{variant}/fuse_model.log",
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/fuse_model.py"
