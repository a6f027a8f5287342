rule build_trt_fp16:
    input:
        onnx=rules.export_onnx.output.onnx,
    output:
        engine="results/{model}/{variant}/tensorrt-fp16/model.engine",
        build="results/{model}/{variant}/tensorrt-fp16/build.json",
        build_log="results/{model}/{variant}/tensorrt-fp16/build.log",
        timing_cache="results/{model}/{variant}/tensorrt-fp16/timing.cache",
        provenance="results/{model}/{variant}/tensorrt-fp16/provenance.json",
    log:
        "logs/{model}/{variant}/tensorrt-fp16/build_trt_fp16.log",
    benchmark:
        "results/benchmarks/{model}/{variant}/tensorrt-fp16/build_trt_fp16.tsv"
    wildcard_constraints:
        variant=alternation(DEPLOY_VARIANTS),
    conda:
        "../envs/tensorrt.yaml"
    params:
        **trt_build_params("fp16"),
    script:
        "../scripts/build_trt_engine.py"


rule build_trt_int8:
    input:
        onnx=rules.export_onnx.output.onnx,
        calib=split("calib"),
    output:
        qdq_onnx="results/{model}/{variant}/tensorrt-int8/model.qdq.onnx",
        engine="results/{model}/{variant}/tensorrt-int8/model.engine",
        build="results/{model}/{variant}/tensorrt-int8/build.json",
        build_log="results/{model}/{variant}/tensorrt-int8/build.log",
        timing_cache="results/{model}/{variant}/tensorrt-int8/timing.cache",
        provenance="results/{model}/{variant}/tensorrt-int8/provenance.json",
    log:
        "logs/{model}/{variant}/tensorrt-int8/build_trt_int8.log",
    benchmark:
        "results/benchmarks/{model}/{variant}/tensorrt-int8/build_trt_int8.tsv"
    wildcard_constraints:
        variant=alternation(DEPLOY_VARIANTS),
    conda:
        "../envs/tensorrt.yaml"
    params:
        **trt_build_params("int8"),
    script:
        "../scripts/build_trt_engine.py"


rule build_trt_int8_calib:
    input:
        onnx=rules.export_onnx.output.onnx,
        calib=split("calib"),
    output:
        engine="results/{model}/{variant}/tensorrt-int8-calib/model.engine",
        calib_cache="results/{model}/{variant}/tensorrt-int8-calib/calibration.cache",
        build="results/{model}/{variant}/tensorrt-int8-calib/build.json",
        build_log="results/{model}/{variant}/tensorrt-int8-calib/build.log",
        timing_cache="results/{model}/{variant}/tensorrt-int8-calib/timing.cache",
        provenance="results/{model}/{variant}/tensorrt-int8-calib/provenance.json",
    log:
        "logs/{model}/{variant}/tensorrt-int8-calib/build_trt_int8_calib.log",
    benchmark:
        "results/benchmarks/{model}/{variant}/tensorrt-int8-calib/build_trt_int8_calib.tsv"
    wildcard_constraints:
        variant=alternation(DEPLOY_VARIANTS),
    conda:
        "../envs/tensorrt.yaml"
    params:
        **trt_build_params("int8-calib"),
    script:
        "../scripts/build_trt_engine.py"


rule evaluate_tensorrt:
    input:
        unpack(trt_eval_inputs),
        unpack(torch_artifact),
        test=split("test"),
    output:
        metrics="results/{model}/{variant}/{runtime}/metrics.json",
        provenance="results/{model}/{variant}/{runtime}/eval_provenance.json",
    log:
        "logs/{model}/{variant}/{runtime}/evaluate_tensorrt.log",
    benchmark:
        "results/benchmarks/{model}/{variant}/{runtime}/evaluate_tensorrt.tsv"
    wildcard_constraints:
        variant=alternation(DEPLOY_VARIANTS),
        runtime=alternation(TRT_RUNTIMES),
    conda:
        "../envs/tensorrt.yaml"
    threads: workflow.cores
    params:
        **timing_params(),
        runtime=lambda w: w.runtime,
        tensorrt=canonical(TRT),
    script:
        "../scripts/evaluate_tensorrt.py"
