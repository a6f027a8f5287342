"""Rule ``collect_benchmarks``: every benchmark JSON in one CSV and Markdown table."""

from __future__ import annotations

from pathlib import Path

from compressflow import benchmark, files


def collect_benchmarks(inputs, outputs, params, threads):
    df = benchmark.collect(inputs["jsons"] if isinstance(inputs["jsons"], list) else [inputs["jsons"]])
    with files.atomic_path(outputs["csv"]) as tmp:
        df.to_csv(tmp, index=False)
    shown = df[[c for c in benchmark.COLUMNS if c not in ("macs", "cpu_model", "isa")]]
    head = ""
    if len(df):
        head = f"CPU: {df.cpu_model.iloc[0]} ({df.isa.iloc[0]}); input {df.input_size.iloc[0]}x{df.input_size.iloc[0]}; threads {df.threads.iloc[0]}\n\n"
    with files.atomic_path(outputs["md"]) as tmp:
        Path(tmp).write_text("# Benchmarks\n\n" + head + shown.to_markdown(index=False, floatfmt=".4g") + "\n")
