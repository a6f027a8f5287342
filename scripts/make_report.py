from compressflow import steps
from compressflow.smk import run

run(snakemake, steps.make_report)  # noqa: F821 (injected by Snakemake)
