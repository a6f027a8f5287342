from compressflow.smk import run
from compressflow.steps.prepare_data import prepare_data

run(snakemake, prepare_data)  # noqa: F821 (injected by Snakemake)
