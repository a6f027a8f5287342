"""Uncertainty of the reported numbers: intervals for accuracies and latencies, paired tests between artifacts.

The test split is small (360 images by default: one image is 0.28 pt), so a bare difference between
two top-1 numbers says little. Everything here is standard-library maths plus numpy, deterministic,
and seeded where it resamples, so the same inputs give the same bytes.
"""

from __future__ import annotations

import math
from fractions import Fraction
from statistics import NormalDist

import numpy as np

from compressflow.errors import CompressflowError


def z_value(confidence: float, sided: int = 2) -> float:
    """Standard normal quantile for a two-sided (or one-sided) ``confidence`` level."""
    if not 0 < confidence < 1:
        raise CompressflowError(f"confidence level {confidence} is not in (0, 1)", "use e.g. 0.95")
    tail = (1 - confidence) / sided
    return NormalDist().inv_cdf(1 - tail)


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes in ``n`` trials (Newcombe 1998, method 3).

    Unlike the Wald interval it stays inside [0, 1] and keeps its coverage near 0 and 1, where
    compressed models' accuracies on easy test sets live.
    """
    if n <= 0 or not 0 <= k <= n:
        return (math.nan, math.nan)
    z = z_value(confidence)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # At k = 0 or n the formula gives the bound exactly in theory; clamp float round-off so the point is inside.
    return (min(max(0.0, centre - half), p), max(min(1.0, centre + half), p))


def bootstrap_percentile(values, q: float = 50, *, samples: int, seed: int, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile-bootstrap interval of the ``q``-th percentile of ``values`` (e.g. p50 latency over timed calls).

    Resamples come from ``numpy.random.default_rng(seed)``: same values, seed and ``samples`` give the same interval.
    """
    arr = np.asarray(values, dtype=float)
    if arr.size == 0 or samples < 1:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.size, size=(samples, arr.size))
    stats = np.percentile(arr[idx], q, axis=1)
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(stats, [tail, 100 - tail])
    point = float(np.percentile(arr, q))
    return (min(float(lo), point), max(float(hi), point))


def discordant(first: str, second: str) -> tuple[int, int, int, int]:
    """(a, b, c, d) of the paired 2x2 table of two per-image correctness strings ('1' = right).

    a: both right; b: only ``first`` right; c: only ``second`` right; d: both wrong.
    """
    if len(first) != len(second):
        raise CompressflowError(
            f"per-image records differ in length ({len(first)} vs {len(second)} test images)",
            "evaluate both artifacts on the same test split (rerun their evaluate jobs)",
        )
    a = b = c = 0
    for x, y in zip(first, second, strict=True):
        if x == "1" and y == "1":
            a += 1
        elif x == "1":
            b += 1
        elif y == "1":
            c += 1
    return a, b, c, len(first) - a - b - c


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test of ``b`` vs ``c`` discordant pairs at 1/2.

    p = min(1, 2 * P[X <= min(b, c)]) with X ~ Binomial(b + c, 1/2); 1 when there is no discordant pair.
    """
    n = b + c
    if n == 0:
        return 1.0
    tail = Fraction(sum(math.comb(n, i) for i in range(min(b, c) + 1)), 2**n)
    return float(min(Fraction(1), 2 * tail))


def paired_difference_interval(a: int, b: int, c: int, d: int, confidence: float = 0.95, sided: int = 2) -> tuple[float, float]:
    """Interval for p1 - p2 = (b - c) / n of two paired proportions: Newcombe's hybrid score method (1998, method 10).

    Built from the Wilson intervals of both proportions and their correlation; unlike the Wald interval
    it behaves at b = c = 0 and near 0 or 1. ``sided=1`` gives one-sided bounds at ``confidence``
    (the two limits of the two-sided interval at 1 - 2 * (1 - confidence)).
    """
    n = a + b + c + d
    if n == 0:
        return (math.nan, math.nan)
    level = confidence if sided == 2 else 1 - 2 * (1 - confidence)
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson(a + b, n, level)
    l2, u2 = wilson(a + c, n, level)
    denom = (a + b) * (c + d) * (a + c) * (b + d)
    # Newcombe's correction of the correlation: ad - bc shrunk by n/2 when positive (as in Altman et al., Statistics with Confidence).
    cross = a * d - b * c
    cross = max(cross - n / 2, 0.0) if cross > 0 else cross
    phi = cross / math.sqrt(denom) if denom else 0.0
    delta = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    eps = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    theta = p1 - p2
    return (max(-1.0, theta - delta), min(1.0, theta + eps))


def verdict(p_value: float, b: int, c: int, alpha: float) -> str:
    """'significant drop' / 'significant gain' / 'no significant change' for an artifact (second) vs its parent (first)."""
    if p_value is None or math.isnan(p_value):
        return ""
    if p_value >= alpha:
        return "no significant change"
    return "significant drop" if b > c else "significant gain"


def near_chance(k: int, n: int, n_classes: int, confidence: float = 0.95) -> bool:
    """Top-1 ``k``/``n`` is near chance (1/``n_classes``): not significantly above it (Wilson lower bound
    at or below chance) or less than a tenth of the way from chance to perfect. A trained FP32 model
    there is a preprocessing or class-order bug, not a result.
    """
    if n <= 0 or n_classes < 2:
        return False
    chance = 1.0 / n_classes
    return k / n < chance + 0.1 * (1.0 - chance) or wilson(k, n, confidence)[0] <= chance


def near_chance_message(model: str, top1: float, n: int, n_classes: int) -> str:
    return (
        f"FP32 accuracy of {model} is near chance (top-1 {top1:.4f} on {n} test images, chance {1 / n_classes:.4f} with {n_classes} classes):"
        " check dataset.preprocess and class order"
    )
