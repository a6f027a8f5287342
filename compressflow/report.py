"""The summary table: one row per (model, variant, runtime), rendered to CSV and Markdown."""

from __future__ import annotations

import pandas as pd

from compressflow import io

COLUMNS = [
    "model",
    "variant",
    "runtime",
    "parent",
    "technique",
    "top1",
    "top5",
    "top1_drop_vs_fp32",
    "size_mb",
    "params",
    "latency_ms_p50",
    "latency_ms_p90",
    "throughput_ips",
    "parent_latency_ms_p50",
    "speedup_vs_parent",
    "faster_than_parent",
    "top1_agreement_vs_parent",
    "mse_vs_parent",
    "max_abs_diff_vs_parent",
    "cosine_vs_parent",
    "n_test",
    "threads",
    "latency_input",
    "cpu_model",
    "isa",
    "note",
]


def summarize(entries: list[dict], min_speedup: float) -> pd.DataFrame:
    """``entries``: dicts with model, variant, parent, technique and metrics_path."""
    rows = []
    for e in entries:
        m = io.read_json(e["metrics_path"])
        row = {k: m.get(k) for k in COLUMNS if k in m}
        row.update(model=e["model"], variant=e["variant"], parent=e["parent"], technique=e["technique"])
        rows.append(row)
    df = pd.DataFrame(rows).reindex(columns=COLUMNS)
    ref = df[(df.variant == "fp32") & (df.runtime == "pytorch")].set_index("model").top1
    df["top1_drop_vs_fp32"] = df.model.map(ref) - df.top1
    has_parent = df.speedup_vs_parent.notna()
    df["faster_than_parent"] = df.faster_than_parent.astype("object")
    df.loc[has_parent, "faster_than_parent"] = df.loc[has_parent, "speedup_vs_parent"] >= min_speedup
    compressed = df.technique.isin(["fuse", "prune_channels", "prune_l1", "ptq", "qat", "dynamic", "mixed", "distill"])
    slow = has_parent & compressed & (df.faster_than_parent == False)  # noqa: E712 (object column)
    df["note"] = df.note.astype("object")
    df.loc[slow, "note"] = f"compressed but not faster (speedup < {min_speedup:g}x)"
    df["_not_root"] = df.variant != "fp32"
    return df.sort_values(["model", "runtime", "_not_root", "variant"]).drop(columns="_not_root").reset_index(drop=True)


def write(df: pd.DataFrame, csv_path, md_path) -> None:
    with io.atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
    show = [
        "model",
        "variant",
        "runtime",
        "parent",
        "top1",
        "top5",
        "size_mb",
        "params",
        "latency_ms_p50",
        "latency_ms_p90",
        "speedup_vs_parent",
        "faster_than_parent",
        "top1_agreement_vs_parent",
        "note",
    ]
    head = f"# compressflow summary\n\nLatency: batch 1, {df.threads.dropna().unique().tolist()} thread(s), input {df.latency_input.dropna().unique().tolist()} px, on {', '.join(df.cpu_model.dropna().unique())} (ISA: {', '.join(df.isa.dropna().unique())}).\nSize in MiB of the saved file. Speed-ups compare each artifact with its parent timed in the same job.\n\n"
    table = df[show].astype("object").where(df[show].notna(), "")
    with io.atomic_path(md_path) as tmp:
        tmp.write_text(head + table.to_markdown(index=False, floatfmt=".4g") + "\n")
