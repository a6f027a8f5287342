from compressflow.smk import run
from compressflow.steps.ptq import ptq

run(snakemake, ptq)  # noqa: F821 (injected by Snakemake)
