from compressflow import runtimes
from compressflow.smk import run

run(snakemake, runtimes.step_quantize_openvino)  # noqa: F821 (injected by Snakemake)
