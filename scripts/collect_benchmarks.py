from compressflow.smk import run
from compressflow.steps.collect_benchmarks import collect_benchmarks

run(snakemake, collect_benchmarks)  # noqa: F821 (injected by Snakemake)
