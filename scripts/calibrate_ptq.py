from compressflow.quantize import static
from compressflow.smk import run

run(snakemake, static.step_calibrate_ptq)  # noqa: F821 (injected by Snakemake)
