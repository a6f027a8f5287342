from compressflow.runtimes import onnx
from compressflow.smk import run

run(snakemake, onnx.step_export_onnx)  # noqa: F821 (injected by Snakemake)
