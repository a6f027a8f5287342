from compressflow import steps
from compressflow.smk import run

run(snakemake, steps.evaluate)  # noqa: F821 (injected by Snakemake)
