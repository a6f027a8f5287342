from compressflow.smk import run
from compressflow.steps.export_onnx import export_onnx

run(snakemake, export_onnx)  # noqa: F821 (injected by Snakemake)
