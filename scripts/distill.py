from compressflow.smk import run
from compressflow.steps.distill import distill

run(snakemake, distill)  # noqa: F821 (injected by Snakemake)
