from compressflow import prune
from compressflow.smk import run

run(snakemake, prune.step_prune_l1)  # noqa: F821 (injected by Snakemake)
