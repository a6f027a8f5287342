from compressflow.smk import run
from compressflow.steps.mixed_pt2e import mixed_pt2e

run(snakemake, mixed_pt2e)  # noqa: F821 (injected by Snakemake)
