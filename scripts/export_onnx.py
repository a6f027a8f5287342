from compressflow import export
from compressflow.smk import run

run(snakemake, export.step_export_onnx)  # noqa: F821 (injected by Snakemake)
