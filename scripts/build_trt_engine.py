from compressflow.runtimes import tensorrt
from compressflow.smk import run

run(snakemake, tensorrt.step_build_trt_engine)  # noqa: F821 (injected by Snakemake)
