"""Curve smoothing shared by the dashboard and the end-of-run plots (no gradio import).

Offers:
    ema(values, smoothing, steps=None) -> np.ndarray   TensorBoard's debiased EMA, NaN-aware; with
                                                        steps, the decay follows the step gaps.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["ema"]


def ema(values: np.ndarray, smoothing: float, steps: np.ndarray | None = None) -> np.ndarray:
    """Exponential moving average as TensorBoard draws it.

    Input:  values (NaN = not logged at that step, skipped), smoothing in [0, 1), and optionally
            the steps of the values: then the weight decays by smoothing**(step gap), so a curve
            drawn from every 25th step smooths like the full one.
    Output: same length; NaN where the input is NaN; the first points are debiased so the curve
            does not start at 0.
    >>> ema(np.array([1.0, 1.0, np.nan, 1.0]), 0.9).round(6).tolist()
    [1.0, 1.0, nan, 1.0]
    >>> ema(np.array([0.0, 1.0]), 0.5).tolist()
    [0.0, 0.6666666666666666]
    """
    values = np.asarray(values, dtype=float)
    if smoothing <= 0:
        return values
    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    ok = np.isfinite(values)
    out = np.full_like(values, np.nan)
    if not ok.any():
        return out
    x = values[ok]
    if steps is None:
        out[ok] = pd.Series(x).ewm(alpha=1 - smoothing, adjust=True).mean().to_numpy()
        return out
    # Decay per point = smoothing ** (step gap): the same recursion with a varying factor. Previews
    # hold ~2,000 points, where this loop costs ~1 ms (pandas' time-based ewm costs more in overhead).
    gaps = np.diff(np.asarray(steps, dtype=np.float64)[ok], prepend=np.nan)
    decay = np.where(np.isfinite(gaps), np.power(smoothing, np.maximum(gaps, 0.0)), 0.0).tolist()
    acc = weight = 0.0
    smoothed = []
    for d, v in zip(decay, x.tolist()):
        acc = d * acc + (1 - smoothing) * v
        weight = d * weight + (1 - smoothing)
        smoothed.append(acc / weight)
    out[ok] = smoothed
    return out
