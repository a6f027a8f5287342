"""The summary table: one row per (model, variant, runtime), rendered to CSV and Markdown, and the report's figures."""

from __future__ import annotations

import csv
import math

import numpy as np
import pandas as pd

from compressflow import files, layout, plotting, stats

COLUMNS = [
    "model",
    "variant",
    "runtime",
    "parent",
    "technique",
    "quant_api",  # which API built a PyTorch INT8 artifact: torch.ao-fx, torch.ao-eager or pt2e
    "compiled",  # torch.compile setting the row ran under (PT2E, pytorch-compile)
    "top1",
    "top1_lo",
    "top1_hi",
    "top5",
    "top5_lo",
    "top5_hi",
    "top1_drop_vs_fp32",
    "collapsed_classes",
    "top1_drop_vs_fp32_ub",
    "b_parent_only",
    "c_artifact_only",
    "mcnemar_p",
    "verdict_vs_parent",
    "size_mb",
    "params",
    "latency_ms_p50",
    "latency_ms_p50_lo",
    "latency_ms_p50_hi",
    "latency_ms_p90",
    "throughput_ips",
    "compile_s",  # first-call compile time, apart from latency (PyTorch 2 rows)
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
    "seed",
    "n_seeds",
    "top1_std",
    "top5_std",
    "latency_ms_p50_std",
    "top1_per_seed",
    "note",
]

#: Defaults of the statistics knobs for callers outside the workflow; the workflow passes config/schema.yaml's ``report`` section.
STATS = {"recommend": "bound", "confidence": 0.95, "alpha": 0.05, "bootstrap_samples": 2000, "latex_interval": "brackets"}


#: Columns a row takes from its ``benchmark_artifact`` JSON (batch 1), never from the evaluate job's metrics.
LATENCY_COLUMNS = (
    "latency_ms_p50",
    "latency_ms_p90",
    "throughput_ips",
    "parent_latency_ms_p50",
    "speedup_vs_parent",
    "threads",
    "latency_input",
    "cpu_model",
    "isa",
)


def exclusive_latency(benchmark_path) -> dict:
    """The latency columns of one artifact from its ``benchmark_artifact`` JSON: batch 1, timed alone, against its parent.

    Every latency in summary.csv/md, table.tex, the Pareto plot and the recommendation comes from here,
    so they agree with benchmark.csv's batch-1 row.
    """
    rec = files.read_json(benchmark_path)
    if rec.get("status") == "unsupported":  # an unsupported variant's marker: its row's note already says why
        return {}
    one = [b for b in rec["batches"] if b["batch"] == 1]
    if not one:
        raise ValueError(f"{benchmark_path} has no batch-1 timing: rerun benchmark_artifact")
    b = one[0]
    return {
        "latency_ms_p50": b["latency_ms_p50"],
        "latency_ms_p90": b["latency_ms_p90"],
        "throughput_ips": b["throughput_ips"],
        "parent_latency_ms_p50": b.get("parent_latency_ms_p50"),
        "speedup_vs_parent": b.get("speedup_vs_parent"),
        "threads": rec["threads"],
        "latency_input": rec["input_size"],
        "cpu_model": rec.get("cpu_model"),
        "isa": rec.get("isa"),
        "latency_ms_calls": b.get("latency_ms_calls"),
        "parent_latency_ms_calls": b.get("parent_latency_ms_calls"),
    }


def summarize(
    entries: list[dict], min_speedup: float, max_accuracy_drop: float = 0.01, *, options: dict | None = None, seed: int = 0
) -> pd.DataFrame:
    """``entries``: dicts with model, variant, parent, technique and metrics_path (and repeat_of, seed for repeats;
    benchmark_path: the row's ``benchmark_artifact`` JSON, the source of its latency columns).

    ``options``: the config's ``report`` section (:data:`STATS` keys); ``seed`` seeds the latency bootstrap.
    """
    opts = {**STATS, **(options or {})}
    rows, per_class, correct, calls, parent_calls = [], [], [], [], []
    for e in entries:
        if e.get("skipped"):
            m = {"runtime": e["runtime"], "skipped": e["skipped"], "note": f"skipped: {e['skipped']}"}
        elif e.get("failed"):
            m = {"runtime": e.get("runtime", layout.PYTORCH), "note": e["failed"]}
        else:
            m = files.read_json(e["metrics_path"])
        if e.get("benchmark_path") and not e.get("failed"):
            m = {k: v for k, v in m.items() if k not in (*LATENCY_COLUMNS, "latency_ms_calls", "parent_latency_ms_calls")}
            if e.get("latency_failed"):  # its benchmark_artifact job failed: no latency, and the row says why
                m["note"] = "; ".join(n for n in (m.get("note"), f"latency {e['latency_failed']}") if n)
            else:
                m.update(exclusive_latency(e["benchmark_path"]))
        row = {k: m.get(k) for k in COLUMNS if k in m}
        row.update(model=e["model"], variant=e["variant"], parent=e["parent"], technique=e["technique"])
        row.update(seed=e.get("seed"), repeat_of=e.get("repeat_of"))
        rows.append(row)
        per_class.append(m.get("per_class_top1"))
        correct.append(m.get("correct_top1"))
        calls.append(m.get("latency_ms_calls"))
        parent_calls.append(m.get("parent_latency_ms_calls"))
    df = pd.DataFrame(rows).reindex(columns=[*COLUMNS, "repeat_of"])
    add_intervals(df, calls, opts["confidence"], opts["bootstrap_samples"], seed)
    add_paired_tests(df, correct, opts["confidence"], opts["alpha"])
    ref = df[(df.variant == layout.ROOT_VARIANT) & (df.runtime == layout.PYTORCH)].set_index("model").top1
    df["top1_drop_vs_fp32"] = df.model.map(ref) - df.top1
    df["collapsed_classes"] = collapsed_classes(df, per_class, max_accuracy_drop)
    has_parent = df.speedup_vs_parent.notna()
    df["faster_than_parent"] = df.faster_than_parent.astype("object")
    df.loc[has_parent, "faster_than_parent"] = df.loc[has_parent, "speedup_vs_parent"] >= min_speedup
    compressed = df.technique.isin(["fuse", "prune_channels", "prune_l1", "ptq", "qat", "dynamic", "mixed", "distill"])
    slow = has_parent & compressed & (df.faster_than_parent == False)  # noqa: E712 (object column)
    df["note"] = df.note.astype("object")
    df.loc[slow, "note"] = f"compressed but not faster (speedup < {min_speedup:g}x)"
    add_chain_speedups(df, calls, parent_calls, opts["confidence"], opts["bootstrap_samples"], seed)
    df["recommended"] = recommend(df, max_accuracy_drop, opts["recommend"])
    df = add_seed_aggregates(df)
    order = df.assign(_not_eager=df.runtime != layout.PYTORCH, _not_root=df.variant != layout.ROOT_VARIANT)
    order = order.sort_values(["model", "_not_eager", "runtime", "_not_root", "variant"])
    out = order.drop(columns=["_not_eager", "_not_root", "repeat_of"]).reset_index(drop=True)
    out.attrs.update(max_accuracy_drop=max_accuracy_drop, n_classes=max((len(p) for p in per_class if p), default=0), **opts)
    return out


def add_intervals(df: pd.DataFrame, calls: list, confidence: float, samples: int, seed: int) -> None:
    """Wilson intervals for top-1/top-5 over the test images; a seeded bootstrap interval for latency p50 over the timed calls.

    ``calls`` holds each row's ``latency_ms_calls`` (or None: metrics written before they were recorded), in ``df`` order.
    """
    n = pd.to_numeric(df.n_test, errors="coerce")
    for col in ("top1", "top5"):
        lo, hi = [], []
        for acc, total in zip(pd.to_numeric(df[col], errors="coerce"), n, strict=True):
            k = round(acc * total) if pd.notna(acc) and pd.notna(total) else None
            # An accuracy that is not k/n (to float32 precision) is not a count over the test split: no interval.
            ok = k is not None and abs(acc * total - k) < 1e-3
            interval = stats.wilson(int(k), int(total), confidence) if ok else (math.nan, math.nan)
            lo.append(interval[0])
            hi.append(interval[1])
        df[f"{col}_lo"], df[f"{col}_hi"] = lo, hi
    lat = [
        stats.bootstrap_percentile(c, 50, samples=samples, seed=seed, confidence=confidence) if c else (math.nan, math.nan) for c in calls
    ]
    df["latency_ms_p50_lo"] = [x[0] for x in lat]
    df["latency_ms_p50_hi"] = [x[1] for x in lat]


def add_chain_speedups(df: pd.DataFrame, calls: list, parent_calls: list, confidence: float, samples: int, seed: int) -> None:
    """``speedup_vs_fp32``: the product of the paired speed-ups along the row's chain of parents back to FP32 eager.

    Each link (artifact vs its parent) was timed in alternating blocks in one job, so machine drift between
    jobs cancels; dividing by an FP32 eager p50 timed in another job would not (it moved 40-59 ms between jobs
    on one machine). ``speedup_vs_fp32_links`` counts the links; 0 marks a row whose chain has an unpaired
    link (its number is then the unpaired ratio, and has no interval). The interval resamples each link's
    timed calls (artifact and parent independently, seeded) and multiplies the resampled ratios of p50s.
    """
    index = {key: i for i, key in enumerate(zip(df.model, df.variant, df.runtime, strict=True))}
    eager = df[(df.variant == layout.ROOT_VARIANT) & (df.runtime == layout.PYTORCH)].set_index("model").latency_ms_p50
    unpaired = df.model.map(eager) / df.latency_ms_p50
    point, lo, hi, links = [], [], [], []
    for i in range(len(df)):
        chain = _chain(df, index, i)
        if chain is None:
            point.append(unpaired.iloc[i])
            lo.append(math.nan)
            hi.append(math.nan)
            links.append(0)
            continue
        ratios = [float(df.speedup_vs_parent.iloc[j]) for j in chain]
        point.append(float(np.prod(ratios)) if ratios else (1.0 if pd.notna(df.latency_ms_p50.iloc[i]) else math.nan))
        interval = _chain_interval([(calls[j], parent_calls[j]) for j in chain], confidence, samples, seed)
        lo.append(min(interval[0], point[-1]) if chain else point[-1])
        hi.append(max(interval[1], point[-1]) if chain else point[-1])
        links.append(len(chain))
    df["speedup_vs_fp32"], df["speedup_vs_fp32_lo"], df["speedup_vs_fp32_hi"] = point, lo, hi
    df["speedup_vs_fp32_links"] = pd.array(links, dtype="Int64")


def _chain(df: pd.DataFrame, index: dict, i: int) -> list[int] | None:
    """Row indices of the links from row ``i`` up to its model's FP32 eager row, or None when one has no paired speed-up."""
    model = df.model.iloc[i]
    root = (model, layout.ROOT_VARIANT, layout.PYTORCH)
    key, out = (model, df.variant.iloc[i], df.runtime.iloc[i]), []
    while key != root:
        j = index.get(key)
        if j is None or j in out or pd.isna(df.speedup_vs_parent.iloc[j]):
            return None
        out.append(j)
        key = parent_key(model, df.parent.iloc[j] or "")
        if key is None:
            return None
    return out


def _chain_interval(pairs: list, confidence: float, samples: int, seed: int) -> tuple[float, float]:
    """Percentile-bootstrap interval of the product of p50(parent)/p50(artifact) over the links (their timed calls)."""
    if not pairs or samples < 1 or any(not own or not theirs for own, theirs in pairs):
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    log_product = np.zeros(samples)
    for own, theirs in pairs:
        for values, sign in ((theirs, 1.0), (own, -1.0)):
            arr = np.asarray(values, dtype=float)
            medians = np.median(arr[rng.integers(0, arr.size, size=(samples, arr.size))], axis=1)
            log_product += sign * np.log(medians)
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.exp(np.percentile(log_product, [tail, 100 - tail]))
    return float(lo), float(hi)


def parent_key(model: str, parent: str) -> tuple[str, str, str] | None:
    """The (model, variant, runtime) row a row's ``parent`` names: ``v`` is v in PyTorch, ``v [runtime]`` that runtime's row."""
    if not parent:
        return None
    if parent.endswith("]") and " [" in parent:
        variant, runtime = parent[:-1].split(" [", 1)
        return (model, variant, runtime)
    return (model, parent, layout.PYTORCH)


def add_paired_tests(df: pd.DataFrame, correct: list, confidence: float, alpha: float) -> None:
    """Exact McNemar test vs the parent, and the one-sided upper bound of the paired top-1 drop vs FP32.

    ``correct`` holds each row's ``correct_top1`` string (one character per test image) or None, in ``df`` order.
    b counts images only the parent gets right, c images only the artifact gets right.
    """
    records = {(m, v, r): c for m, v, r, c in zip(df.model, df.variant, df.runtime, correct, strict=True) if isinstance(c, str) and c}
    b_col, c_col, p_col, verdicts, ub = [], [], [], [], []
    for model, variant, runtime, parent, own, top1 in zip(df.model, df.variant, df.runtime, df.parent, correct, df.top1, strict=True):
        key = parent_key(model, parent or "")
        theirs = records.get(key) if key else None
        has_own = isinstance(own, str) and bool(own)
        if has_own and theirs is not None:
            _, b, c, _ = stats.discordant(theirs, own)
            p = stats.mcnemar_exact(b, c)
            b_col.append(b)
            c_col.append(c)
            p_col.append(p)
            verdicts.append(stats.verdict(p, b, c, alpha))
        else:
            b_col.append(None)
            c_col.append(None)
            p_col.append(math.nan)
            no_record = key is not None and pd.notna(top1)
            verdicts.append("n/a: no per-image record" if no_record else "")
        base = records.get((model, layout.ROOT_VARIANT, layout.PYTORCH))
        if (variant, runtime) == (layout.ROOT_VARIANT, layout.PYTORCH) and pd.notna(top1):
            ub.append(0.0)
        elif has_own and base is not None:
            ub.append(stats.paired_difference_interval(*stats.discordant(base, own), confidence, sided=1)[1])
        else:
            ub.append(math.nan)
    df["b_parent_only"] = pd.array(b_col, dtype="Int64")
    df["c_artifact_only"] = pd.array(c_col, dtype="Int64")
    df["mcnemar_p"] = p_col
    df["verdict_vs_parent"] = verdicts
    df["top1_drop_vs_fp32_ub"] = ub


def add_seed_aggregates(df: pd.DataFrame) -> pd.DataFrame:
    """One extra row per (model, repeated variant, runtime): mean and sample std (ddof=1) over its seeds, and each seed's top-1.

    The row is a summary, not an artifact: it is never recommended and has no paired test or interval.
    """
    rep = df[df.repeat_of.notna()]
    extra = []
    for (_, base, _), g in rep.groupby(["model", "repeat_of", "runtime"], sort=True):
        if len(g) < 2:
            continue
        g = g.sort_values("seed")
        first = g.iloc[0]
        row = {c: first[c] for c in ("model", "runtime", "parent", "technique", "n_test", "threads", "latency_input", "cpu_model", "isa")}
        row.update(variant=f"{base} (mean of {len(g)} seeds)", n_seeds=len(g), recommended=False, verdict_vs_parent="")
        for col in ("top1", "top5", "latency_ms_p50"):
            vals = pd.to_numeric(g[col], errors="coerce")
            row[col], row[f"{col}_std"] = vals.mean(), vals.std(ddof=1)
        for col in ("size_mb", "params", "latency_ms_p90", "throughput_ips", "top1_drop_vs_fp32", "speedup_vs_fp32"):
            row[col] = pd.to_numeric(g[col], errors="coerce").mean()
        row["top1_per_seed"] = "; ".join(f"seed {int(sd)}: {t:.4f}" for sd, t in zip(g.seed, g.top1, strict=True))
        row["note"] = "mean ± std over seeds (not an artifact)"
        extra.append(row)
    if not extra:
        return df
    return pd.concat([df, pd.DataFrame(extra)], ignore_index=True)


def collapsed_classes(df: pd.DataFrame, per_class: list, max_accuracy_drop: float) -> pd.Series:
    """Per row, the classes whose top-1 fell more than ``max_accuracy_drop`` below the same model's FP32 PyTorch row.

    An overall drop within budget can hide one class that collapsed;
    ``per_class`` holds each row's ``per_class_top1`` dict (class -> top-1) or None, in ``df`` order.
    Written ``"3 (-0.083); 8 (-0.028)"``; empty when none collapsed or a side has no per-class numbers.
    """
    base = {}
    for model, variant, runtime, pc in zip(df.model, df.variant, df.runtime, per_class, strict=True):
        if variant == layout.ROOT_VARIANT and runtime == layout.PYTORCH and pc:
            base[model] = pc
    out = []
    for model, pc in zip(df.model, per_class, strict=True):
        ref = base.get(model)
        if not ref or not pc:
            out.append("")
            continue
        drops = [(c, pc[c] - ref[c]) for c in ref if pc.get(c) is not None and ref[c] is not None]
        # 1e-6 absorbs the float32 rounding in per-class accuracies: a drop equal to the budget is not "more than" it.
        out.append("; ".join(f"{c} ({d:+.3f})" for c, d in drops if -d > max_accuracy_drop + 1e-6))
    return pd.Series(out, index=df.index, dtype="object")


def write(df: pd.DataFrame, csv_path, md_path) -> None:
    with files.atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
    level = f"{100 * df.attrs.get('confidence', STATS['confidence']):g}%"
    shown = df.assign(
        top1=[_with_interval(*v, ".4f") for v in zip(df.top1, df.top1_lo, df.top1_hi, df.top1_std, df.n_seeds, strict=True)],
        top5=[_with_interval(*v, ".4f") for v in zip(df.top5, df.top5_lo, df.top5_hi, df.top5_std, df.n_seeds, strict=True)],
        latency_ms_p50=[
            _with_interval(*v, ".4g")
            for v in zip(df.latency_ms_p50, df.latency_ms_p50_lo, df.latency_ms_p50_hi, df.latency_ms_p50_std, df.n_seeds, strict=True)
        ],
        speedup_vs_fp32=[
            _with_interval(v, lo, hi, math.nan, None, ".3g")
            for v, lo, hi in zip(df.speedup_vs_fp32, df.speedup_vs_fp32_lo, df.speedup_vs_fp32_hi, strict=True)
        ],
        b_c=[f"{b}/{c}" if pd.notna(b) and pd.notna(c) else "" for b, c in zip(df.b_parent_only, df.c_artifact_only, strict=True)],
        mcnemar_p=[f"{p:.3g}" if pd.notna(p) else "" for p in df.mcnemar_p],
        top1_drop_vs_fp32_ub=[f"{u:.4f}" if pd.notna(u) else "" for u in df.top1_drop_vs_fp32_ub],
    ).rename(
        columns={
            "top1": f"top1 [{level} CI]",
            "top5": f"top5 [{level} CI]",
            "latency_ms_p50": f"latency_ms_p50 [{level} CI]",
            "b_c": "b/c vs parent",
            "speedup_vs_fp32": f"speedup_vs_fp32 [{level} CI]",
        }
    )
    show = [
        "model",
        "variant",
        "runtime",
        "parent",
        f"top1 [{level} CI]",
        f"top5 [{level} CI]",
        "b/c vs parent",
        "mcnemar_p",
        "verdict_vs_parent",
        "top1_drop_vs_fp32_ub",
        "size_mb",
        "params",
        f"latency_ms_p50 [{level} CI]",
        "latency_ms_p90",
        "speedup_vs_parent",
        f"speedup_vs_fp32 [{level} CI]",
        "faster_than_parent",
        "recommended",
        "top1_agreement_vs_parent",
        "collapsed_classes",
        "note",
    ]
    head = f"# compressflow summary\n\nLatency: batch 1, {sorted({int(t) for t in df.threads.dropna()})} thread(s), input {sorted({int(t) for t in df.latency_input.dropna()})} px, on {', '.join(df.cpu_model.dropna().unique())} (ISA: {', '.join(df.isa.dropna().unique())}).\nSize in MiB of the saved file. Every CPU latency comes from the artifact's `benchmark_artifact` job, which holds all the cores it runs on; speed-ups compare the artifact with its parent timed in alternating blocks in that same job (benchmark.csv, batch 1, has the same numbers); `speedup_vs_fp32` multiplies those paired speed-ups along the chain of parents back to FP32 eager, with a bootstrap interval over each link's timed calls.\n\n"
    table = shown[show].astype("object").where(shown[show].notna(), "")
    text = (
        head
        + near_chance_lines(df)
        + table.to_markdown(index=False, floatfmt=".4g")
        + "\n\n"
        + statistics_section(df)
        + "\n"
        + collapsed_section(df)
    )
    with files.atomic_path(md_path) as tmp:
        tmp.write_text(text + seeds_section(df))


def near_chance_lines(df: pd.DataFrame) -> str:
    """A warning line per model whose FP32 PyTorch top-1 is near chance (:func:`stats.near_chance`)."""
    n_classes = df.attrs.get("n_classes", 0)
    root = df[(df.variant == layout.ROOT_VARIANT) & (df.runtime == layout.PYTORCH)]
    lines = []
    for r in root.itertuples():
        if pd.notna(r.top1) and pd.notna(r.n_test) and stats.near_chance(round(r.top1 * r.n_test), int(r.n_test), n_classes):
            lines.append(f"**WARNING: {stats.near_chance_message(r.model, r.top1, int(r.n_test), n_classes)}.**\n\n")
    return "".join(lines)


def _with_interval(value, lo, hi, std, n_seeds, fmt: str) -> str:
    """``0.9528 [0.9270, 0.9704]`` for an artifact, ``0.9528 ± 0.0040 (3 seeds)`` for a seed aggregate."""
    if pd.isna(value):
        return ""
    if pd.notna(n_seeds):
        return f"{value:{fmt}} ± {std:{fmt}} ({int(n_seeds)} seeds)"
    if pd.isna(lo) or pd.isna(hi):
        return f"{value:{fmt}}"
    return f"{value:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def recommendation_rule(df: pd.DataFrame) -> str:
    """The rule that picked the ``recommended`` rows, in words (summary.md states it)."""
    budget = df.attrs.get("max_accuracy_drop", 0.01)
    level = f"{100 * df.attrs.get('confidence', STATS['confidence']):g}%"
    if df.attrs.get("recommend", STATS["recommend"]) == "point":
        return (
            f"Recommended (rule `point`): per model, the fastest artifact (latency p50) whose top-1 drop vs the FP32 PyTorch"
            f" row, as a point estimate (`top1_drop_vs_fp32`), is at most {budget:g}. The drop's sampling error is ignored."
        )
    return (
        f"Recommended (rule `bound`): per model, the fastest artifact (latency p50) whose top-1 drop vs the FP32 PyTorch row"
        f" is at most {budget:g} with {level} confidence: the one-sided {level} upper bound of the paired difference"
        " (Newcombe's hybrid score interval over the same test images, column `top1_drop_vs_fp32_ub`) must be within the budget."
    )


def statistics_section(df: pd.DataFrame) -> str:
    """What the intervals and tests are, and the recommendation rule."""
    level = f"{100 * df.attrs.get('confidence', STATS['confidence']):g}%"
    alpha = df.attrs.get("alpha", STATS["alpha"])
    samples = df.attrs.get("bootstrap_samples", STATS["bootstrap_samples"])
    return (
        "## Statistics\n\n"
        f"- top1/top5 [{level} CI]: Wilson score interval over the test images.\n"
        f"- latency_ms_p50 [{level} CI]: percentile bootstrap of the median over the row's timed calls"
        f" ({samples} resamples, seeded by the config `seed`); it covers timing noise within this job, not other machines.\n"
        "- b/c vs parent: test images only the parent gets right (b) and only this artifact gets right (c);"
        " `mcnemar_p` is the exact two-sided McNemar test of b vs c (binomial, 1/2)."
        f' `verdict_vs_parent` is "significant drop" or "significant gain" when p < {alpha:g}, else "no significant change".\n'
        f"- top1_drop_vs_fp32_ub: one-sided {level} upper bound of the paired top-1 drop vs the same model's FP32 PyTorch row.\n"
        f"- {recommendation_rule(df)}\n"
    )


def seeds_section(df: pd.DataFrame) -> str:
    """Per repeated variant: mean ± sample std over seeds and each seed's top-1 (empty when nothing is repeated)."""
    agg = df[df.n_seeds.notna()]
    if agg.empty:
        return ""
    lines = [
        f"- {r.model} / {r.variant} / {r.runtime}: top-1 {r.top1:.4f} ± {r.top1_std:.4f} (sample std); {r.top1_per_seed}"
        for r in agg.itertuples()
    ]
    return "\n## Seeds\n\nVariants built with `repeats: N`, one artifact per seed (`<variant>@seed<seed>`):\n\n" + "\n".join(lines) + "\n"


def collapsed_section(df: pd.DataFrame) -> str:
    """The Markdown section listing rows with collapsed classes, with what one test image is worth."""
    budget = df.attrs.get("max_accuracy_drop")
    n_test, n_classes = pd.to_numeric(df.n_test, errors="coerce").max(), df.attrs.get("n_classes", 0)
    text = "## Collapsed classes\n\n"
    text += "Classes whose per-class top-1 fell more than " + (f"{budget:g}" if budget is not None else "the accuracy budget")
    text += " below the same model's FP32 PyTorch row (column `collapsed_classes`, class (change in per-class top-1))."
    if pd.notna(n_test) and n_classes:
        per = n_test / n_classes
        text += (
            f" The test split has {int(n_test)} images over {n_classes} classes, about {per:.0f} per class:"
            f" one image is worth about {100 / per:.1f} pt of a class's top-1 ({100 / n_test:.2f} pt of overall top-1),"
            " so a single-image change already counts."
        )
    hit = df[df.collapsed_classes.fillna("") != ""]
    lines = [f"- {r.model} / {r.variant} / {r.runtime}: {r.collapsed_classes}" for r in hit.itertuples()]
    return text + "\n\n" + ("\n".join(lines) if lines else "none") + "\n"


def recommend(df: pd.DataFrame, max_accuracy_drop: float, rule: str = "bound") -> pd.Series:
    """Per model, the fastest row whose top-1 drop vs the FP32 baseline is within budget.

    ``rule="bound"``: the one-sided upper confidence bound of the paired drop (``top1_drop_vs_fp32_ub``)
    must be within budget, so an artifact whose drop may exceed it by chance of the test sample is not picked;
    ``rule="point"``: the point estimate ``top1_drop_vs_fp32`` must.
    """
    if rule not in ("bound", "point"):
        raise ValueError(f"unknown recommendation rule {rule!r}; use 'bound' or 'point'")
    drop = df.top1_drop_vs_fp32_ub if rule == "bound" else df.top1_drop_vs_fp32
    out = pd.Series(False, index=df.index)
    ok = df[(drop <= max_accuracy_drop + 1e-12) & df.latency_ms_p50.notna()]
    for _, group in ok.groupby("model"):
        out[group.latency_ms_p50.idxmin()] = True
    return out


def pareto_front(points: pd.DataFrame) -> pd.DataFrame:
    """Rows not dominated by another row with lower-or-equal latency and higher-or-equal top-1."""
    pts = points.sort_values(["latency_ms_p50", "top1"], ascending=[True, False])
    best, keep = -1.0, []
    for idx, row in pts.iterrows():
        if row.top1 > best:
            keep.append(idx)
            best = row.top1
    return pts.loc[keep]


def latex_interval(value, lo, hi, fmt: str, style: str) -> str:
    """One cell: ``0.953 [0.929, 0.971]`` (brackets), ``$0.953 \\pm 0.021$`` or ``$0.953^{+0.018}_{-0.024}$`` (pm), or the value (none).

    ``pm`` writes one half-width only when the interval is symmetric at the printed precision; Wilson and
    bootstrap intervals usually are not, and a symmetric ± would misstate them.
    """
    if pd.isna(value):
        return "--"
    if style == "none" or pd.isna(lo) or pd.isna(hi):
        return f"{value:{fmt}}"
    if style == "brackets":
        return f"{value:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"
    up, down = f"{hi - value:{fmt}}", f"{value - lo:{fmt}}"
    if up == down:
        return f"${value:{fmt}} \\pm {up}$"
    return f"${value:{fmt}}^{{+{up}}}_{{-{down}}}$"


def latex_table(df: pd.DataFrame, path, interval: str | None = None) -> None:
    """A booktabs table for the paper: accuracy and latency with intervals, McNemar p vs parent, size, speed-up vs FP32 eager.

    ``interval``: ``brackets``, ``pm`` or ``none`` (config ``report.latex_interval``); seed aggregates show mean ± std.
    """
    style = interval or df.attrs.get("latex_interval", STATS["latex_interval"])
    cols = {
        "model": "Model",
        "variant": "Variant",
        "runtime": "Runtime",
        "top1": "Top-1",
        "mcnemar_p": "$p$ vs parent",
        "size_mb": "Size (MiB)",
        "latency_ms_p50": "p50 (ms)",
        "speedup_vs_fp32": "Speed-up",
        "faster_than_parent": "Faster",
    }
    if style != "none":
        level = f"{100 * df.attrs.get('confidence', STATS['confidence']):g}\\%"
        cols.update(top1=f"Top-1 ({level} CI)", latency_ms_p50=f"p50 (ms, {level} CI)")
    d = df.reindex(
        columns=[*cols, "top1_lo", "top1_hi", "top1_std", "latency_ms_p50_lo", "latency_ms_p50_hi", "latency_ms_p50_std", "n_seeds"]
    )
    d = d[d.latency_ms_p50.notna()]
    t = d[list(cols)].copy()
    t["top1"] = [_latex_cell(*v, ".3f", style) for v in zip(d.top1, d.top1_lo, d.top1_hi, d.top1_std, d.n_seeds, strict=True)]
    t["latency_ms_p50"] = [
        _latex_cell(*v, ".2f", style)
        for v in zip(d.latency_ms_p50, d.latency_ms_p50_lo, d.latency_ms_p50_hi, d.latency_ms_p50_std, d.n_seeds, strict=True)
    ]
    t["mcnemar_p"] = [f"{p:.3f}" if pd.notna(p) else "--" for p in d.mcnemar_p]
    t["faster_than_parent"] = t.faster_than_parent.map({True: "yes", False: "no"}).fillna("")
    t["variant"] = t.variant + df.loc[t.index, "recommended"].map({True: r" $\star$", False: ""})
    for c in ("model", "variant", "runtime"):
        t[c] = t[c].str.replace("_", r"\_", regex=False)
    styler = t.rename(columns=cols).style.hide(axis="index").format({"Size (MiB)": "{:.2f}", "Speed-up": "{:.2f}"}, na_rep="--")
    latex = styler.to_latex(hrules=True, column_format="lll" + "r" * (len(cols) - 3))
    with files.atomic_path(path) as tmp:
        tmp.write_text(latex)


def _latex_cell(value, lo, hi, std, n_seeds, fmt: str, style: str) -> str:
    if pd.notna(n_seeds) and pd.notna(value):
        return f"${value:{fmt}} \\pm {std:{fmt}}$ ({int(n_seeds)} seeds)"
    return latex_interval(value, lo, hi, fmt, style)


def pareto_plot(df: pd.DataFrame, png_path, pdf_path) -> None:
    """Top-1 vs latency, one panel per model at one column's width.

    Every artifact is a small muted marker (its shape: the runtime); the Pareto front is drawn and its
    points numbered, with their intervals; the recommended artifact is starred. A numbered key under each
    panel names the front's points, so no label overlaps however many artifacts there are.
    Seed aggregates are not drawn: each seed's artifact is.
    """
    import matplotlib.ticker

    plt = plotting.style()
    data = df[df.latency_ms_p50.notna() & df.top1.notna()]
    if "n_seeds" in data:
        data = data[data.n_seeds.isna()]
    models = sorted(data.model.unique()) or [""]
    runtimes = sorted(data.runtime.unique())
    marker = {r: plotting.MARKERS[i % len(plotting.MARKERS)] for i, r in enumerate(runtimes)}
    fronts = {m: pareto_front(data[data.model == m]) for m in models}
    key_lines = {m: len(fronts[m]) for m in models}
    heights = [2.4 + 0.085 * key_lines[m] for m in models]
    fig, axes = plt.subplots(
        len(models), 1, figsize=(plotting.COLUMN_IN, sum(heights) + 0.2), squeeze=False, gridspec_kw={"height_ratios": heights}
    )
    level = f"{100 * df.attrs.get('confidence', STATS['confidence']):g}%"
    for ax, model in zip(axes[:, 0], models, strict=True):
        d = data[data.model == model]
        for runtime, g in d.groupby("runtime"):
            ax.scatter(g.latency_ms_p50, g.top1, s=9, marker=marker[runtime], color=plotting.MUTED, alpha=0.55, lw=0, label=runtime)
        front = fronts[model]
        ax.step(front.latency_ms_p50, front.top1, where="post", color=plotting.PALETTE[0], lw=0.8, label="Pareto front")
        if len(front):
            ax.errorbar(
                front.latency_ms_p50,
                front.top1,
                xerr=[
                    (front.latency_ms_p50 - front.latency_ms_p50_lo).fillna(0).clip(lower=0),
                    (front.latency_ms_p50_hi - front.latency_ms_p50).fillna(0).clip(lower=0),
                ],
                yerr=[(front.top1 - front.top1_lo).fillna(0).clip(lower=0), (front.top1_hi - front.top1).fillna(0).clip(lower=0)],
                fmt="none",
                ecolor=plotting.PALETTE[0],
                elinewidth=0.6,
                alpha=0.8,
            )
        for i, (_, row) in enumerate(front.iterrows(), start=1):
            ax.scatter([row.latency_ms_p50], [row.top1], s=16, marker=marker[row.runtime], color=plotting.PALETTE[0], zorder=4)
            ax.annotate(
                str(i), (row.latency_ms_p50, row.top1), fontsize=6, xytext=(2, 3), textcoords="offset points", color=plotting.PALETTE[0]
            )
        rec = d[d.recommended == True]  # noqa: E712
        ax.scatter(
            rec.latency_ms_p50,
            rec.top1,
            marker="*",
            s=70,
            color=plotting.PALETTE[1],
            edgecolor="black",
            lw=0.4,
            label="recommended",
            zorder=5,
        )
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        size = f", {int(d.latency_input.max())} px" if len(d) and d.latency_input.notna().any() else ""
        ax.set_xlabel(f"latency p50 (ms, batch 1{size}; {level} bootstrap)")
        ax.set_ylabel(f"top-1 ({level} Wilson)")
        ax.text(0.02, 0.04, model, transform=ax.transAxes, fontsize=7, fontweight="bold", va="bottom")
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, fontsize=5, markerscale=1.2, frameon=False, columnspacing=0.8)
        key = [
            f"{i} {row.variant} · {row.runtime}: {row.top1:.3f}, {row.latency_ms_p50:.3g} ms"
            + (" (recommended)" if row.recommended == True else "")  # noqa: E712
            for i, (_, row) in enumerate(front.iterrows(), start=1)
        ]
        if key:
            ax.text(0, -0.3, "\n".join(key), transform=ax.transAxes, fontsize=5.5, va="top", ha="left", family="monospace")
    fig.tight_layout()
    plotting.save_png(fig, png_path, dpi=200)
    plotting.save_pdf(fig, pdf_path)
    plt.close(fig)


# ---------------------------------------------------------------- per-layer figures

SQNR_CAP_DB = 99.0  # an exact layer (zero error) has infinite SQNR: drawn at the cap


def _read_table(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _db(value) -> float:
    v = float(value)
    return SQNR_CAP_DB if math.isinf(v) and v > 0 else v


def placeholder_plot(png_path, message: str) -> None:
    """A small PNG that says why there is no figure: a report output must always exist."""
    plt = plotting.style()
    fig = plt.figure(figsize=(plotting.COLUMN_IN, 0.6))
    fig.text(0.5, 0.5, message, ha="center", va="center")
    plotting.save_png(fig, png_path, dpi=200, tight=False)
    plt.close(fig)


def _layer_heights(counts) -> list[float]:
    return [0.7 + 0.11 * n for n in counts]


def sensitivity_plot(tables: dict, png_path) -> None:
    """Per model, one row per unit (read down the network): the logit SQNR with only that unit INT8 (bars) and
    the resulting val top-1 change (dots, top axis). One column wide: the unit names read horizontally.

    ``tables``: model -> sensitivity.csv (columns layer, top1, top1_delta, sqnr_db, fp32_top1).
    """
    if not tables:
        placeholder_plot(png_path, "no sensitivity tables in this configuration")
        return
    plt = plotting.style()
    data = {m: _read_table(p) for m, p in sorted(tables.items())}
    heights = _layer_heights(len(rows) for rows in data.values())
    fig, axes = plt.subplots(
        len(data), 1, figsize=(plotting.COLUMN_IN, sum(heights)), squeeze=False, gridspec_kw={"height_ratios": heights}
    )
    for ax, (model, rows) in zip(axes[:, 0], data.items(), strict=True):
        y = list(range(len(rows)))
        ax.barh(y, [_db(r["sqnr_db"]) for r in rows], color=plotting.PALETTE[0], alpha=0.8, height=0.7)
        ax.set_yticks(y, [r["layer"] for r in rows], fontsize=5)
        ax.invert_yaxis()
        ax.set_xlabel("logit SQNR with only this unit INT8 (dB)", color=plotting.PALETTE[0])
        ax.grid(axis="y", alpha=0)
        top = ax.twiny()
        top.plot([100 * float(r["top1_delta"]) for r in rows], y, "o", color=plotting.PALETTE[3], markersize=2.5)
        top.axvline(0, color=plotting.PALETTE[3], lw=0.6, alpha=0.5)
        top.set_xlabel("val top-1 change (pt)", color=plotting.PALETTE[3])
        top.grid(False)
        base = float(rows[0]["fp32_top1"]) if rows else float("nan")
        ax.set_title(f"{model}: one unit INT8 at a time (FP32 val top-1 {base:.3f})", pad=4, fontsize=6, loc="left", y=1.4)
    fig.tight_layout()
    plotting.save_png(fig, png_path, dpi=200)
    plt.close(fig)


def layer_error_plot(tables: dict, png_path) -> None:
    """Per model, each quantized variant's per-layer output SQNR vs its float parent, the layers read down the
    network (one row each) so the figure stays one column wide; one marker series per variant.

    ``tables``: (model, variant) -> layer_error.csv (columns layer, mse, sqnr_db). Layers keep the
    order of the variant with the most layers; a variant without a layer (e.g. kept FP32) has a gap there.
    """
    if not tables:
        placeholder_plot(png_path, "no per-layer error tables in this configuration")
        return
    plt = plotting.style()
    by_model: dict = {}
    for (model, variant), path in sorted(tables.items()):
        by_model.setdefault(model, {})[variant] = {r["layer"]: _db(r["sqnr_db"]) for r in _read_table(path)}
    counts = [len({n for v in variants.values() for n in v}) for variants in by_model.values()]
    legend_rows = max(len(v) for v in by_model.values()) / 2
    heights = [h + 0.1 * legend_rows for h in _layer_heights(counts)]
    fig, axes = plt.subplots(
        len(by_model), 1, figsize=(plotting.COLUMN_IN, sum(heights)), squeeze=False, gridspec_kw={"height_ratios": heights}
    )
    for ax, (model, variants) in zip(axes[:, 0], by_model.items(), strict=True):
        layers = list(max(variants.values(), key=len))
        layers += sorted({n for v in variants.values() for n in v} - set(layers))
        for i, (variant, sqnr) in enumerate(variants.items()):
            x = [sqnr.get(n, float("nan")) for n in layers]
            ax.plot(
                x,
                range(len(layers)),
                linestyle="-" if i < len(plotting.PALETTE) else "--",
                lw=0.7,
                marker=plotting.MARKERS[i % len(plotting.MARKERS)],
                markersize=2.5,
                color=plotting.PALETTE[i % len(plotting.PALETTE)],
                label=variant,
            )
        ax.set_yticks(range(len(layers)), layers, fontsize=5)
        ax.invert_yaxis()
        ax.set_xlabel(f"output SQNR vs float parent (dB; exact layers at {SQNR_CAP_DB:g})")
        ax.set_title(f"{model}: per-layer quantization error")
        handles, labels = ax.get_legend_handles_labels()
    rows = math.ceil(len(labels) / 2)
    fig.tight_layout(rect=(0, 0.18 * rows / sum(heights), 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=2, frameon=False, fontsize=5)
    plotting.save_png(fig, png_path, dpi=200)
    plt.close(fig)
