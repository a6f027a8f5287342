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
