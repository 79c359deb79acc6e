"""Ambulatory glucose profile (AGP) of a CGM series: the 14-day standard view.

Percentiles 5/25/50/75/95 per time-of-day bin (Europe/Stockholm wall clock), time in the
international consensus ranges (Battelino et al., Diabetes Care 2019), GMI, CV and the
share of the period the sensor was active. numpy throughout.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from clinic_api.labels import TZ

F64 = npt.NDArray[np.float64]
PERCENTILES = (5, 25, 50, 75, 95)
# Consensus ranges in mmol/L; readings carry one decimal, so 3.0–3.8 is [3.0, 3.9).
RANGES: tuple[tuple[str, str], ...] = (
    ("very_low", "< 3,0"),
    ("low", "3,0–3,8"),
    ("target", "3,9–10,0"),
    ("high", "10,1–13,9"),
    ("very_high", "> 13,9"),
)
MG_DL_PER_MMOL_L = 18.016  # glucose, 180.16 g/mol


@dataclass(frozen=True, slots=True)
class Agp:
    bin_min: int
    bin_start_min: npt.NDArray[np.int64]  # minutes after local midnight
    pct: F64  # shape (5, n_bins): rows PERCENTILES; nan where a bin has no readings
    counts: npt.NDArray[np.int64]
    ranges_pct: dict[str, float]  # RANGES keys → share of readings, %
    n: int
    mean_mmol_l: float
    gmi_pct: float
    gmi_mmol_mol: float
    cv_pct: float | None
    active_pct: float
    days: int


def gmi(mean_mmol_l: float) -> tuple[float, float]:
    """GMI (%) = 3.31 + 0.02392 × mean glucose in mg/dL (Bergenstal 2018); IFCC mmol/mol = (% − 2.15) × 10.929."""
    pct = 3.31 + 0.02392 * mean_mmol_l * MG_DL_PER_MMOL_L
    return pct, (pct - 2.15) * 10.929


def local_minute_of_day(t_s: F64) -> npt.NDArray[np.int64]:
    """Minutes after Stockholm midnight for epoch seconds.

    The UTC offset only changes on whole UTC hours, so it is looked up once per distinct
    hour in the series, not once per reading.
    """
    if len(t_s) == 0:
        return np.zeros(0, dtype=np.int64)
    hours, inv = np.unique(np.floor(t_s / 3600.0).astype(np.int64), return_inverse=True)
    offs = np.array(
        [dt.datetime.fromtimestamp(int(h) * 3600, TZ).utcoffset().total_seconds() for h in hours],  # type: ignore[union-attr]
        dtype=np.float64,
    )
    local = t_s + offs[inv]
    return (np.floor(local / 60.0).astype(np.int64)) % 1440


def ranges(g: F64) -> dict[str, float]:
    n = len(g)
    if n == 0:
        return {k: 0.0 for k, _ in RANGES}
    masks = {
        "very_low": g < 3.0,
        "low": (g >= 3.0) & (g < 3.9),
        "target": (g >= 3.9) & (g <= 10.0),
        "high": (g > 10.0) & (g <= 13.9),
        "very_high": g > 13.9,
    }
    return {k: float(m.sum()) / n * 100.0 for k, m in masks.items()}


def compute(t_s: F64, g: F64, end: dt.datetime, *, days: int = 14, bin_min: int | None = None) -> Agp | None:
    """The AGP over [end − days, end); None without readings.

    ``bin_min`` defaults to 15 minutes, or 30/60 for sensors that report less often than
    that (every bin then holds readings and the bands stay continuous).
    """
    t1 = end.timestamp()
    t0 = t1 - days * 86400.0
    keep = (t_s >= t0) & (t_s < t1) & np.isfinite(g)
    t, v = t_s[keep], g[keep]
    if len(v) == 0:
        return None
    if bin_min is None:
        step_min = float(np.median(np.diff(np.sort(t)))) / 60.0 if len(t) >= 2 else 5.0
        bin_min = 15 if step_min <= 15 else 30 if step_min <= 30 else 60
    n_bins = 1440 // bin_min
    b = local_minute_of_day(t) // bin_min
    pct = np.full((len(PERCENTILES), n_bins), np.nan)
    counts = np.bincount(b, minlength=n_bins).astype(np.int64)
    order = np.argsort(b, kind="stable")
    starts = np.r_[0, np.cumsum(counts)]
    vs = v[order]
    for k in np.flatnonzero(counts):
        pct[:, k] = np.percentile(vs[starts[k] : starts[k + 1]], PERCENTILES)
    mean = float(v.mean())
    gmi_pct, gmi_mmol = gmi(mean)
    # Sensor active: readings × the sensor's own interval (median step, 1–15 min) over the period.
    interval_s = float(np.clip(np.median(np.diff(t)), 60.0, 900.0)) if len(t) >= 2 else 300.0
    active = min(100.0, len(v) * interval_s / (t1 - t0) * 100.0)
    return Agp(
        bin_min=bin_min,
        bin_start_min=np.arange(n_bins, dtype=np.int64) * bin_min,
        pct=pct,
        counts=counts,
        ranges_pct=ranges(v),
        n=len(v),
        mean_mmol_l=mean,
        gmi_pct=gmi_pct,
        gmi_mmol_mol=gmi_mmol,
        cv_pct=float(v.std(ddof=1)) / mean * 100.0 if len(v) > 1 and mean > 0 else None,
        active_pct=active,
        days=days,
    )
