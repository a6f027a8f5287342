from compressflow.smk import run
from compressflow.steps.evaluate_openvino import evaluate_openvino

run(snakemake, evaluate_openvino)  # noqa: F821 (injected by Snakemake)
