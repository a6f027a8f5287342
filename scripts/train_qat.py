from compressflow.quantize import qat
from compressflow.smk import run

run(snakemake, qat.step_train_qat)  # noqa: F821 (injected by Snakemake)
