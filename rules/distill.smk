rule distill:
    input:
        # the initial student, when the variant starts from another variant's model
        unpack(
            lambda w: (
                {
                    "student": f"results/{w.model}/{VARIANTS[w.variant]['student_from']}/model.pt"
                }
                if VARIANTS[w.variant].get("student_from")
                else {}
            )
        ),
        model=parent_model,
        train=split("train"),
        val=split("val"),
    output:
        model="results/{model}/{variant}/model.pt",
        stats="results/{model}/{variant}/distill.json",
        provenance="results/{model}/{variant}/provenance.json",
    log:
        "logs/{model}/{variant}/distill.log",
    benchmark:
        "results/benchmarks/{model}/{variant}/distill.tsv"
    wildcard_constraints:
        variant=alternation(variants_of("distill")),
    conda:
        "../envs/torch.yaml"
    params:
        knobs=knobs,
        train=lambda w: train_params(w.model),
        seed=seed_of,
    script:
        "../scripts/distill.py"
