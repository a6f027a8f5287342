rule benchmark_artifact:
    input:
        unpack(benchmark_inputs),
    output:
        json="results/benchmarks/{model}/{variant}/{runtime}.json",
        provenance="results/benchmarks/{model}/{variant}/{runtime}.provenance.json",
    log:
        "logs/benchmarks/{model}/{variant}/{runtime}.log",
    benchmark:
        "results/benchmarks/{model}/{variant}/{runtime}/benchmark_artifact.tsv"
    wildcard_constraints:
        variant=alternation([ROOT, *VARIANTS]),
        runtime=alternation(BENCHMARK_RUNTIMES),
    conda:
        benchmark_env
    # Timing jobs take every core they are given, so nothing else runs beside them.
    threads: workflow.cores
    params:
        benchmark=canonical(config["benchmark"]),
        ov_precision=DEPLOY["openvino"]["inference_precision"],
        model=lambda w: w.model,
        variant=lambda w: w.variant,
        runtime=lambda w: w.runtime,
        parent_runtime=benchmark_parent_runtime,
        seed=config["seed"],
    script:
        "../scripts/benchmark_artifact.py"


rule collect_benchmarks:
    input:
        jsons=[e["json"] for e in benchmark_entries()],
    output:
        csv="results/report/benchmark.csv",
        md="results/report/benchmark.md",
        provenance="results/report/benchmark.provenance.json",
    log:
        "logs/report/collect_benchmarks.log",
    benchmark:
        "results/benchmarks/collect_benchmarks.tsv"
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/collect_benchmarks.py"
