from compressflow.smk import run
from compressflow.steps.prune_channels import prune_channels

run(snakemake, prune_channels)  # noqa: F821 (injected by Snakemake)
