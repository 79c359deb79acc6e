"""Axis ticks and gaps for the charts: "nice" value steps, calendar ticks in Stockholm time,
and where a series has no data long enough that a line across would mislead.

Pure functions over numbers and epoch seconds, so they are tested without a page.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from clinic_api.labels import MONTHS, TZ, number

F64 = npt.NDArray[np.float64]
DAY_S = 86400.0
# Candidate value steps within a decade: 1, 2, 2.5, 5 (× 10^n).
_MANTISSAS = (1.0, 2.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True, slots=True)
class ValueTicks:
    lo: float  # the axis' extent: a whole number of steps around the data
    hi: float
    step: float
    values: tuple[float, ...]
    decimals: int  # decimals a label needs to show the step exactly

    def label(self, v: float) -> str:
        return number(v, self.decimals)


def nice_step(raw: float) -> float:
    """The smallest 1/2/2.5/5 × 10^n step that is at least ``raw``."""
    if not math.isfinite(raw) or raw <= 0:
        return 1.0
    exp = math.floor(math.log10(raw))
    base = 10.0**exp
    for m in _MANTISSAS:
        step = m * base
        if step >= raw * (1 - 1e-9):
            return float(f"{step:.12g}")
    return 10.0 * base  # pragma: no cover - 10 always qualifies


def _decimals(step: float) -> int:
    for d in range(0, 8):
        if abs(round(step, d) - step) < 1e-9 * max(1.0, step):
            return d
    return 8


def value_ticks(lo: float, hi: float, target: int = 5) -> ValueTicks:
    """About ``target`` ticks on a nice step covering [lo, hi]; the axis is widened to whole steps."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    if hi < lo:
        lo, hi = hi, lo
    if hi - lo < 1e-9:
        pad = max(abs(lo) * 0.05, 0.5)
        lo, hi = lo - pad, hi + pad
    step = nice_step((hi - lo) / max(target - 1, 1))
    first = math.floor(lo / step + 1e-9) * step
    last = math.ceil(hi / step - 1e-9) * step
    n = round((last - first) / step)
    values = tuple(float(f"{first + k * step:.10g}") for k in range(n + 1))
    return ValueTicks(values[0], values[-1], step, values, _decimals(step))


@dataclass(frozen=True, slots=True)
class TimeTick:
    t_s: float
    label: str
    major: bool  # a labelled tick (others are faint day lines)


def _local_midnight(d: dt.date) -> float:
    # Midnight exists on every Stockholm day (the clocks change at 02:00/03:00).
    return dt.datetime(d.year, d.month, d.day, tzinfo=TZ).timestamp()


def date_label(d: dt.date) -> str:
    return f"{d.day} {MONTHS[d.month - 1]}"


def time_ticks(t0: float, t1: float, max_labels: int = 8) -> list[TimeTick]:
    """Ticks at local (Europe/Stockholm) day, week (Monday) or month boundaries in [t0, t1].

    The step is the shortest of 1 day, 2 days, 1 week, 2 weeks, 1 month, 2 months that
    keeps the labelled ticks at most ``max_labels``; for steps up to two weeks every day
    boundary is also returned as an unlabelled minor tick.
    """
    if t1 <= t0:
        return []
    first = dt.datetime.fromtimestamp(t0, TZ).date()
    last = dt.datetime.fromtimestamp(t1, TZ).date()
    days = [first + dt.timedelta(days=k) for k in range((last - first).days + 1)]
    days = [d for d in days if t0 <= _local_midnight(d) <= t1]
    n_days = (t1 - t0) / DAY_S
    ticks: list[TimeTick] = []
    for step_days in (1, 2, 7, 14):
        if step_days == 1:
            major = days
        elif step_days == 2:
            major = [d for d in days if d.toordinal() % 2 == 0]
        else:
            # Weeks start on Monday (ISO); fortnights on even ISO weeks.
            major = [d for d in days if d.weekday() == 0 and (step_days == 7 or d.isocalendar().week % 2 == 0)]
        if len(major) <= max_labels:
            chosen = set(major)
            ticks = [TimeTick(_local_midnight(d), date_label(d) if d in chosen else "", d in chosen) for d in days]
            if step_days > 2:
                ticks = [t for t in ticks if t.major or n_days <= 31]
            return ticks
    months = [d for d in days if d.day == 1]
    step_m = 1 if len(months) <= max_labels else 2
    return [
        TimeTick(_local_midnight(d), f"{MONTHS[d.month - 1]} {d.year}" if d.month == 1 else MONTHS[d.month - 1], True)
        for d in months
        if (d.month - 1) % step_m == 0
    ]


def gap_threshold_s(t_s: F64, continuous: bool, bucket_s: float | None = None) -> float:
    """Longest step between consecutive points still drawn as one line.

    1.5 × the usual (median) interval, and never less than 20 min for continuous sensors
    (the engine's CGM run gap) or one day for spot measurements (a twice-daily BP that
    misses one reading is not a hole in the record). Bucketed series use the bucket width
    as the usual interval, so an empty bucket breaks the line.
    """
    floor = 20 * 60.0 if continuous else DAY_S
    if bucket_s is not None:
        usual = bucket_s
    elif len(t_s) >= 2:
        usual = float(np.median(np.diff(t_s)))
    else:
        usual = 0.0
    return max(1.5 * usual, floor)


def segments(t_s: F64, max_step_s: float) -> list[tuple[int, int]]:
    """Half-open index ranges [a, b) of runs whose consecutive steps are ≤ ``max_step_s``."""
    n = len(t_s)
    if n == 0:
        return []
    breaks = np.flatnonzero(np.diff(t_s) > max_step_s) + 1
    bounds = np.r_[0, breaks, n]
    return [(int(a), int(b)) for a, b in itertools.pairwise(bounds)]
