rule record_environment:
    output:
        txt="results/provenance/environment.txt",
        yml="results/provenance/environment.yml",
    log:
        "logs/provenance/record_environment.log",
    benchmark:
        "results/benchmarks/record_environment.tsv"
    conda:
        "../envs/report.yaml"
    params:
        # Reruns the record when any installed package changes.
        packages=package_digest(),
    script:
        "../scripts/record_environment.py"
