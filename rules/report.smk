def report_inputs():
    """make_report's inputs; also what ``onerror`` reports from when a job failed."""
    return dict(
        metrics=[f"results/{m}/{v}/metrics.json" for m, v in built_variants()]
        + [e["metrics_path"] for e in deploy_entries() if not e.get("skipped")],
        sensitivity=[
            f"results/{m}/sensitivity/sensitivity.csv" for m in sensitivity_models()
        ],
        layer_error=[
            f"results/{m}/{v}/layer_error.csv" for m, v in layer_error_tables()
        ],
        benchmarks=[e["json"] for e in benchmark_entries()],
    )


def report_params():
    return dict(
        entries=[
            {
                "model": m,
                "variant": v,
                "parent": "" if v == ROOT else parent_of(v),
                "technique": technique_of(v),
                **repeat_info(v),
                "benchmark_path": layout.benchmark_json(m, v, layout.PYTORCH),
            }
            for m, v in built_variants()
        ]
        + [
            {
                **{
                    k: e[k]
                    for k in (
                        "model",
                        "variant",
                        "runtime",
                        "parent",
                        "technique",
                        "skipped",
                    )
                    if k in e
                },
                **(
                    {
                        "benchmark_path": layout.benchmark_json(
                            e["model"], e["variant"], e["runtime"]
                        )
                    }
                    if e["runtime"] in BENCHMARK_ARTIFACTS
                    else {}
                ),
            }
            for e in deploy_entries()
        ],
        sensitivity_models=sensitivity_models(),
        layer_error_tables=[[m, v] for m, v in layer_error_tables()],
        min_speedup=config["evaluate"]["min_speedup"],
        max_accuracy_drop=config["report"]["max_accuracy_drop"],
        stats={k: v for k, v in config["report"].items() if k != "max_accuracy_drop"},
        seed=config["seed"],
    )


rule make_report:
    input:
        **report_inputs(),
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
        sensitivity_png=report(
            "results/report/sensitivity.png",
            caption="../report/sensitivity.rst",
            category="Figures",
        ),
        layer_error_png=report(
            "results/report/layer_error.png",
            caption="../report/layer_error.rst",
            category="Figures",
        ),
        # the sha256 of each report file: a hand edit stops the next run, as for any artifact
        provenance="results/report/provenance.json",
    log:
        "logs/report/make_report.log",
    benchmark:
        "results/benchmarks/make_report.tsv"
    conda:
        "../envs/report.yaml"
    params:
        **report_params(),
    script:
        "../scripts/make_report.py"


RUN_STARTED = (
    []
)  # onstart's time: the failure records written at or after it are this run's


def report_failures(snakemake_log):
    """``onerror``: the report from what was built (failed rows marked), then one line per failed job."""
    from compressflow import failures
    from compressflow.steps.make_report import make_partial_report

    records = failures.since(RUN_STARTED[0])
    text = ""
    for path in (
        snakemake_log if isinstance(snakemake_log, (list, tuple)) else [snakemake_log]
    ):
        try:
            text += Path(path).read_text(errors="replace") if path else ""
        except OSError:
            pass
    lines = failures.summary_lines(records, text)
    outputs = dict(rules.make_report.output.items())
    try:
        marked = make_partial_report(report_inputs(), outputs, report_params(), records)
        said = (
            f"compressflow: {outputs['md']} was written from what was built; "
            f"{len(marked)} row(s) say failed or not built"
        )
    except Exception as exc:
        said = f"compressflow: no report could be written from what was built ({type(exc).__name__}: {exc})"
    print(said, file=sys.stderr)
    print(f"compressflow: {len(lines)} job(s) failed:", file=sys.stderr)
    for line in lines:
        print(f"  {line}", file=sys.stderr)


rule sweep_report:
    input:
        csv="results/report/summary.csv",
    output:
        csv=report(
            "results/report/sweeps/{sweep}.csv",
            caption="../report/sweep.rst",
            category="Sweeps",
        ),
        png=report(
            "results/report/sweeps/{sweep}.png",
            caption="../report/sweep.rst",
            category="Sweeps",
        ),
        pdf="results/report/sweeps/{sweep}.pdf",
        tex="results/report/sweeps/{sweep}.tex",
    log:
        "logs/report/sweeps/{sweep}.log",
    wildcard_constraints:
        sweep=alternation(SWEEPS),
    conda:
        "../envs/report.yaml"
    params:
        name=lambda w: w.sweep,
        sweep=lambda w: canonical(SWEEPS[w.sweep]),
    script:
        "../scripts/sweep_report.py"
