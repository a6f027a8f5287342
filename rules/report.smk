rule make_report:
    input:
        metrics=[f"results/{m}/{v}/metrics.json" for m, v in built_variants()]
        + [e["metrics_path"] for e in deploy_entries()],
    output:
        csv=report(
            "results/report/summary.csv",
            caption="../report/summary.rst",
            category="Summary",
        ),
        md="results/report/summary.md",
        tex=report(
            "results/report/table.tex",
            caption="../report/table.rst",
            category="Summary",
        ),
        pareto_png=report(
            "results/report/pareto.png",
            caption="../report/pareto.rst",
            category="Figures",
        ),
        pareto_pdf="results/report/pareto.pdf",
    log:
        "logs/report/make_report.log",
    conda:
        "../envs/report.yaml"
    params:
        entries=[
            {
                "model": m,
                "variant": v,
                "parent": "" if v == ROOT else parent_of(v),
                "technique": technique_of(v),
            }
            for m, v in built_variants()
        ]
        + [
            {k: e[k] for k in ("model", "variant", "parent", "technique")}
            for e in deploy_entries()
        ],
        min_speedup=config["evaluate"]["min_speedup"],
        max_accuracy_drop=config["report"]["max_accuracy_drop"],
    script:
        "../scripts/make_report.py"
