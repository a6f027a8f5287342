from compressflow import steps
from compressflow.smk import run

run(snakemake, steps.record_environment)  # noqa: F821 (injected by Snakemake)
