rule prepare_data:
    output:
        train="results/data/train.pt",
        calib="results/data/calib.pt",
        val="results/data/val.pt",
        test="results/data/test.pt",
        provenance="results/data/provenance.json",
    log:
        "logs/data/prepare_data.log",
    benchmark:
        "results/benchmarks/prepare_data.tsv"
    conda:
        "../envs/torch.yaml"
    params:
        **data_params(),
    script:
        "../scripts/prepare_data.py"
