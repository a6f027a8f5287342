from compressflow.runtimes import openvino
from compressflow.smk import run

run(snakemake, openvino.step_evaluate_openvino)  # noqa: F821 (injected by Snakemake)
