from compressflow import steps
from compressflow.smk import run

run(snakemake, steps.train_baseline)  # noqa: F821 (injected by Snakemake)
