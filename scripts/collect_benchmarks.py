from compressflow import benchmark
from compressflow.smk import run

run(snakemake, benchmark.step_collect_benchmarks)  # noqa: F821 (injected by Snakemake)
