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
    # Times nothing (benchmark_artifact times every artifact): one core.
    threads: 1
    params:
        **accuracy_params(),
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
    # Times nothing (benchmark_artifact times the row and both precision hints): one core.
    threads: 1
    params:
        **accuracy_params(),
        runtime=lambda w: w.runtime,
        precision=DEPLOY["openvino"]["inference_precision"],
    script:
        "../scripts/evaluate_openvino.py"


# PyTorch 2 rows: torch.compile (inductor, freezing) of model.pt, and AOTInductor packages.
rule evaluate_compile:
    input:
        unpack(torch_artifact),
        test=split("test"),
    output:
        metrics="results/{model}/{variant}/pytorch-compile/metrics.json",
        provenance="results/{model}/{variant}/pytorch-compile/eval_provenance.json",
    log:
        "logs/{model}/{variant}/pytorch-compile/evaluate_compile.log",
    benchmark:
        "results/benchmarks/{model}/{variant}/pytorch-compile/evaluate_compile.tsv"
    wildcard_constraints:
        variant=alternation(COMPILE_VARIANTS),
    conda:
        "../envs/torch.yaml"
    threads: workflow.cores
    params:
        **timing_params(),
        runtime="pytorch-compile",
    script:
        "../scripts/evaluate_compile.py"


rule package_aoti:
    input:
        model="results/{model}/{variant}/model.pt",
    output:
        package="results/{model}/{variant}/pytorch-aoti/model.pt2",
        accuracy="results/{model}/{variant}/pytorch-aoti/accuracy.pt2",
        build="results/{model}/{variant}/pytorch-aoti/build.json",
        provenance="results/{model}/{variant}/pytorch-aoti/provenance.json",
    log:
        "logs/{model}/{variant}/pytorch-aoti/package_aoti.log",
    benchmark:
        "results/benchmarks/{model}/{variant}/pytorch-aoti/package_aoti.tsv"
    wildcard_constraints:
        variant=alternation(AOTI_VARIANTS),
    conda:
        "../envs/torch.yaml"
    params:
        latency_size=config["evaluate"]["latency"]["input_size"],
        data_size=DATA_SIZE,
        seed=config["seed"],
    script:
        "../scripts/package_aoti.py"


rule evaluate_aoti:
    input:
        unpack(torch_artifact),
        package=rules.package_aoti.output.package,
        accuracy=rules.package_aoti.output.accuracy,
        build=rules.package_aoti.output.build,
        test=split("test"),
    output:
        metrics="results/{model}/{variant}/pytorch-aoti/metrics.json",
        provenance="results/{model}/{variant}/pytorch-aoti/eval_provenance.json",
    log:
        "logs/{model}/{variant}/pytorch-aoti/evaluate_aoti.log",
    benchmark:
        "results/benchmarks/{model}/{variant}/pytorch-aoti/evaluate_aoti.tsv"
    wildcard_constraints:
        variant=alternation(AOTI_VARIANTS),
    conda:
        "../envs/torch.yaml"
    threads: workflow.cores
    params:
        **timing_params(),
        runtime="pytorch-aoti",
    script:
        "../scripts/evaluate_aoti.py"
