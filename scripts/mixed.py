from compressflow.smk import run
from compressflow.steps.mixed import mixed

run(snakemake, mixed)  # noqa: F821 (injected by Snakemake)
