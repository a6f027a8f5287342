from compressflow import steps
from compressflow.smk import run

run(snakemake, steps.prepare_data)  # noqa: F821 (injected by Snakemake)
