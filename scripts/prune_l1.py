from compressflow.smk import run
from compressflow.steps.prune_l1 import prune_l1

run(snakemake, prune_l1)  # noqa: F821 (injected by Snakemake)
