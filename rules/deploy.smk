rule quantize_onnxruntime:
    input:
        onnx=rules.export_onnx.output.onnx,
        calib=split("calib"),
    output:
        onnx="results/{model}/{variant}/onnxruntime-int8/model.onnx",
        report="results/{model}/{variant}/onnxruntime-int8/quantize.json",
        provenance="results/{model}/{variant}/onnxruntime-int8/provenance.json",
    log:
        "logs/{model}/{variant}/onnxruntime-int8/quantize_onnxruntime.log",
    benchmark:
        "results/benchmarks/{model}/{variant}/onnxruntime-int8/quantize_onnxruntime.tsv"
    wildcard_constraints:
        variant=alternation(DEPLOY_VARIANTS),
    conda:
        "../envs/onnx.yaml"
    params:
        int8=canonical(DEPLOY["onnxruntime"]["int8"]),
        seed=config["seed"],
    script:
        "../scripts/quantize_onnxruntime.py"


rule evaluate_onnxruntime:
    input:
        unpack(ort_eval_inputs),
        unpack(torch_artifact),
        test=split("test"),
    output:
        metrics="results/{model}/{variant}/{runtime}/metrics.json",
        provenance="results/{model}/{variant}/{runtime}/eval_provenance.json",
    log:
        "logs/{model}/{variant}/{runtime}/evaluate_onnxruntime.log",
    benchmark:
        "results/benchmarks/{model}/{variant}/{runtime}/evaluate_onnxruntime.tsv"
    wildcard_constraints:
        variant=alternation(DEPLOY_VARIANTS),
        runtime=alternation(ORT_RUNTIMES),
    conda:
        "../envs/onnx.yaml"
    # No timing here (benchmark_artifact times every artifact): the job needs only its threads.
    threads: min(config["evaluate"]["threads"], workflow.cores)
    params:
        batch_size=config["evaluate"]["batch_size"],
        threads=config["evaluate"]["threads"],
        seed=config["seed"],
        runtime=lambda w: w.runtime,
    script:
        "../scripts/evaluate_onnxruntime.py"


rule convert_openvino:
    input:
        onnx=rules.export_onnx.output.onnx,
    output:
        xml="results/{model}/{variant}/openvino/model.xml",
        bin="results/{model}/{variant}/openvino/model.bin",
        provenance="results/{model}/{variant}/openvino/provenance.json",
    log:
        "logs/{model}/{variant}/openvino/convert_openvino.log",
    benchmark:
        "results/benchmarks/{model}/{variant}/openvino/convert_openvino.tsv"
    wildcard_constraints:
        variant=alternation(DEPLOY_VARIANTS),
    conda:
        "../envs/openvino.yaml"
    params:
        seed=config["seed"],
    script:
        "../scripts/convert_openvino.py"


rule quantize_openvino:
    input:
        xml=rules.convert_openvino.output.xml,
        bin=rules.convert_openvino.output.bin,
        calib=split("calib"),
        val=split("val"),
    output:
        xml="results/{model}/{variant}/openvino-int8/model.xml",
        bin="results/{model}/{variant}/openvino-int8/model.bin",
        report="results/{model}/{variant}/openvino-int8/quantize.json",
        provenance="results/{model}/{variant}/openvino-int8/provenance.json",
    log:
        "logs/{model}/{variant}/openvino-int8/quantize_openvino.log",
    benchmark:
        "results/benchmarks/{model}/{variant}/openvino-int8/quantize_openvino.tsv"
    wildcard_constraints:
        variant=alternation(DEPLOY_VARIANTS),
    conda:
        "../envs/openvino.yaml"
    params:
        int8=canonical(DEPLOY["openvino"]["int8"]),
        seed=config["seed"],
    script:
        "../scripts/quantize_openvino.py"


rule evaluate_openvino:
    input:
        unpack(ov_eval_inputs),
        unpack(torch_artifact),
        test=split("test"),
    output:
        metrics="results/{model}/{variant}/{runtime}/metrics.json",
        provenance="results/{model}/{variant}/{runtime}/eval_provenance.json",
    log:
        "logs/{model}/{variant}/{runtime}/evaluate_openvino.log",
    benchmark:
        "results/benchmarks/{model}/{variant}/{runtime}/evaluate_openvino.tsv"
    wildcard_constraints:
        variant=alternation(DEPLOY_VARIANTS),
        runtime=alternation(OV_RUNTIMES),
    conda:
        "../envs/openvino.yaml"
    # Times the two OpenVINO precision hints against each other: nothing else may run beside it.
    threads: workflow.cores
    params:
        **timing_params(),
        runtime=lambda w: w.runtime,
        precision=DEPLOY["openvino"]["inference_precision"],
    script:
        "../scripts/evaluate_openvino.py"
