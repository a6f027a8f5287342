from compressflow import steps
from compressflow.smk import run

run(snakemake, steps.fuse_model)  # noqa: F821 (injected by Snakemake)
