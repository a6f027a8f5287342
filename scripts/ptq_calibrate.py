from compressflow.smk import run
from compressflow.steps.ptq_calibrate import ptq_calibrate

run(snakemake, ptq_calibrate)  # noqa: F821 (injected by Snakemake)
