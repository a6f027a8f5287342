from compressflow.smk import run
from compressflow.steps.benchmark_artifact import benchmark_artifact

run(snakemake, benchmark_artifact)  # noqa: F821 (injected by Snakemake)
