from compressflow.smk import run
from compressflow.steps.convert_openvino import convert_openvino

run(snakemake, convert_openvino)  # noqa: F821 (injected by Snakemake)
