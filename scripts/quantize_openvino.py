from compressflow.smk import run
from compressflow.steps.quantize_openvino import quantize_openvino

run(snakemake, quantize_openvino)  # noqa: F821 (injected by Snakemake)
