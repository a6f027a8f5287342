from compressflow import prune
from compressflow.smk import run

run(snakemake, prune.step_prune_channels)  # noqa: F821 (injected by Snakemake)
