from compressflow import quantize
from compressflow.smk import run

run(snakemake, quantize.step_train_qat)  # noqa: F821 (injected by Snakemake)
