"""Binomial confidence intervals for the accuracy and retention figures (pure arithmetic, no imports)."""

from __future__ import annotations

import math


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of ``k`` successes in ``n`` trials (z = 1.96: 95 %).

    Unlike the normal approximation it stays inside [0, 1] and is not empty at k = 0 or k = n,
    which is where small benchmark samples often land. ``n = 0`` gives the uninformative (0, 1).
    """
    if n < 0 or not 0 <= k <= n:
        msg = f"need 0 <= k <= n, got k={k}, n={n}"
        raise ValueError(msg)
    if n == 0:
        return 0.0, 1.0
    p = k / n
    z2 = z * z
    denom = 1 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    # At k = 0 or k = n the bound is exactly 0 or 1; rounding would leave it a hair inside.
    lo = 0.0 if k == 0 else max(0.0, center - half)
    hi = 1.0 if k == n else min(1.0, center + half)
    return lo, hi


def successes(rate: float, n: int) -> int:
    """``k`` from a stored rate and ``n`` (results written before counts were stored)."""
    return min(n, max(0, round(rate * n)))


def format_rate(k: int, n: int) -> str:
    """``0.917 [0.74, 0.98] (n=24)``: the rate, its 95 % Wilson interval and the sample size."""
    if n == 0:
        return "– (n=0)"
    lo, hi = wilson(k, n)
    return f"{k / n:.3f} [{lo:.2f}, {hi:.2f}] (n={n})"
