from compressflow import benchmark
from compressflow.smk import run

run(snakemake, benchmark.step_benchmark_artifact)  # noqa: F821 (injected by Snakemake)
