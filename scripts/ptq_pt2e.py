from compressflow.smk import run
from compressflow.steps.ptq_pt2e import ptq_pt2e

run(snakemake, ptq_pt2e)  # noqa: F821 (injected by Snakemake)
