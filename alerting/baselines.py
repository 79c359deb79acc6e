"""Personal baselines (CLINICAL_RULES.md, "Personal baselines"), vectorised over patients.

All blocks work on day grids (patients × days, nan = no value that day) and iterate
over the ~28 day columns at most, never over patients. Day offsets count back from
today (0) so -28..-8 is the stable baseline period.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alerting.series import F64

MAD_TO_SIGMA = 1.4826  # makes the MAD a consistent estimator of a normal SD


@dataclass(frozen=True, slots=True)
class Baseline:
    median: F64
    sigma: F64
    n: F64
    sufficient: np.ndarray  # bool per patient: >= min_points values in the period


def _cols(n_days: int, first_offset: int, last_offset: int) -> slice:
    """Columns for day offsets first..last (inclusive, negative = days ago)."""
    today = n_days - 1
    return slice(max(today + first_offset, 0), max(today + last_offset + 1, 0))


def median_mad(
    grid: F64, first_offset: int = -28, last_offset: int = -8, min_points: int = 7, min_sigma: float = 0.0
) -> Baseline:
    """Median and robust spread (1.4826 × MAD) of days first..last; insufficient below min_points."""
    block = grid[:, _cols(grid.shape[1], first_offset, last_offset)]
    n = np.sum(~np.isnan(block), axis=1).astype(np.float64)
    ok = n >= min_points
    med = np.full(grid.shape[0], np.nan)
    sig = np.full(grid.shape[0], np.nan)
    if ok.any() and block.shape[1]:
        sub = block[ok]
        m = np.nanmedian(sub, axis=1)
        mad = np.nanmedian(np.abs(sub - m[:, None]), axis=1)
        med[ok] = m
        sig[ok] = np.maximum(MAD_TO_SIGMA * mad, min_sigma)
    return Baseline(med, sig, n, ok)


def ewma_alarm(grid: F64, base: Baseline, start_offset: int = -7, lam: float = 0.2, width: float = 3.0) -> np.ndarray:
    """Days (bool grid) where the EWMA of x exceeds μ0 + width·σ·√(λ/(2−λ)·(1−(1−λ)^{2t})).

    The EWMA starts at μ0 on day ``start_offset`` and carries over days without a value
    (t counts values seen), so gaps neither raise nor reset it.
    """
    n_pat, n_days = grid.shape
    alarm = np.zeros(grid.shape, dtype=bool)
    s = base.median.copy()
    t = np.zeros(n_pat)
    for col in range(max(n_days - 1 + start_offset, 0), n_days):
        x = grid[:, col]
        have = ~np.isnan(x) & base.sufficient
        s = np.where(have, lam * np.where(have, x, 0.0) + (1 - lam) * s, s)
        t = t + have
        limit = width * base.sigma * np.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * t)))
        alarm[:, col] = have & (s - base.median > limit)
    return alarm


def cusum_alarm(grid: F64, base: Baseline, start_offset: int = -7, k: float = 0.5, h: float = 4.0) -> np.ndarray:
    """Upper CUSUM C⁺ = max(0, C⁺ + (x − μ0)/σ − k); alarm when C⁺ ≥ h, then reset to 0."""
    n_pat, n_days = grid.shape
    alarm = np.zeros(grid.shape, dtype=bool)
    c = np.zeros(n_pat)
    for col in range(max(n_days - 1 + start_offset, 0), n_days):
        x = grid[:, col]
        have = ~np.isnan(x) & base.sufficient
        with np.errstate(invalid="ignore"):
            step = np.where(
                have, (np.where(have, x, 0.0) - np.nan_to_num(base.median)) / np.where(have, base.sigma, 1.0) - k, 0.0
            )
        c = np.where(have, np.maximum(0.0, c + step), c)
        fired = have & (c >= h)
        alarm[:, col] = fired
        c = np.where(fired, 0.0, c)
    return alarm


def _ema(grid: F64, span_days: int) -> F64:
    """EMA with α = 2/(span+1) over days, carrying the last value over missing days."""
    alpha = 2.0 / (span_days + 1.0)
    out = np.full(grid.shape, np.nan)
    e = np.full(grid.shape[0], np.nan)
    for col in range(grid.shape[1]):
        x = grid[:, col]
        have = ~np.isnan(x)
        e = np.where(have, np.where(np.isnan(e), x, alpha * x + (1 - alpha) * e), e)
        out[:, col] = e
    return out


def macd_alarm(
    grid: F64, *, fast: int = 3, slow: int = 21, n_sd: float = 2.0, min_points: int = 7, start_offset: int = -7
) -> np.ndarray:
    """MACD = EMA(fast) − EMA(slow); alarm above n_sd SD of its values in days −28..−8."""
    macd = _ema(grid, fast) - _ema(grid, slow)
    stable = macd[:, _cols(grid.shape[1], -28, -8)]
    cnt = np.sum(~np.isnan(stable), axis=1)
    sd = np.full(grid.shape[0], np.nan)
    ok = cnt >= min_points
    if ok.any():
        sd[ok] = np.nanstd(stable[ok], axis=1, ddof=1)
    alarm = np.zeros(grid.shape, dtype=bool)
    c0 = max(grid.shape[1] - 1 + start_offset, 0)
    with np.errstate(invalid="ignore"):
        alarm[:, c0:] = ok[:, None] & ~np.isnan(grid[:, c0:]) & (macd[:, c0:] > n_sd * sd[:, None]) & (sd[:, None] > 0)
    return alarm
