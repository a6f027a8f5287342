rule make_report:
    input:
        metrics=[f"results/{m}/{v}/metrics.json" for m, v in built_variants()],
    output:
        csv="results/report/summary.csv",
        md="results/report/summary.md",
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
        ],
        min_speedup=config["evaluate"]["min_speedup"],
    script:
        "../scripts/make_report.py"
