from compressflow.smk import run
from compressflow.steps.qat_pt2e import qat_pt2e

run(snakemake, qat_pt2e)  # noqa: F821 (injected by Snakemake)
