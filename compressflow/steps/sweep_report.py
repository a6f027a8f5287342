"""Rule ``sweep_report``: one sweep's table (CSV, LaTeX) and figure (PNG, PDF) from the summary table."""

from __future__ import annotations

import pandas as pd

from compressflow import files, sweepreport


def sweep_report(inputs, outputs, params, threads):
    summary = pd.read_csv(inputs["csv"])
    df = sweepreport.table(summary, params["sweep"])
    with files.atomic_path(outputs["csv"]) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
    sweepreport.latex(df, params["sweep"], outputs["tex"])
    sweepreport.figure(df, params["sweep"], params["name"], outputs["png"], outputs["pdf"])
