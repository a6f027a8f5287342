from compressflow.smk import run
from compressflow.steps.qat import qat

run(snakemake, qat)  # noqa: F821 (injected by Snakemake)
