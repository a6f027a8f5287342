"""Rule ``record_environment``: pip- and conda-style records of the environment that ran the workflow."""

from __future__ import annotations

from compressflow import provenance


def record_environment(inputs, outputs, params, threads):
    provenance.write_environment(outputs["txt"], outputs["yml"])
