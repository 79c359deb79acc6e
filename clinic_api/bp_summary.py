"""Seven-day home blood pressure as ESH defines it (2023 ESH guideline, home BP monitoring):
morning and evening readings on 7 days, the first day discarded, the rest averaged.

Days are Europe/Stockholm calendar days: the window is today and the 6 days before;
its first day is dropped (readings on the first day run high), leaving days 2–7.
A reading before 12:00 local time is a morning reading, from 12:00 an evening one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from clinic_api.labels import TZ

F64 = npt.NDArray[np.float64]
WINDOW_DAYS = 7
MIN_READINGS = 12  # H6's default: fewer and the mean is not a valid home BP


@dataclass(frozen=True, slots=True)
class Mean:
    systolic: float | None
    diastolic: float | None
    n: int  # readings (systolic) averaged


@dataclass(frozen=True, slots=True)
class BpSummary:
    first_day: dt.date  # first day kept (day 2 of the window)
    last_day: dt.date
    morning: Mean
    evening: Mean
    overall: Mean  # all readings of days 2–7
    days_with_readings: int

    @property
    def sufficient(self) -> bool:
        return self.overall.n >= MIN_READINGS


def _local(t_s: F64) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(ordinal of the local date, local hour) per reading."""
    loc = [dt.datetime.fromtimestamp(float(t), TZ) for t in t_s]
    return (
        np.array([x.date().toordinal() for x in loc], dtype=np.int64),
        np.array([x.hour for x in loc], dtype=np.int64),
    )


def _mean(x: F64) -> float | None:
    return float(x.mean()) if len(x) else None


def summarise(t_sys: F64, sys: F64, t_dia: F64, dia: F64, now: dt.datetime) -> BpSummary | None:
    """The summary for the week ending today; None when days 2–7 hold no systolic reading."""
    today = now.astimezone(TZ).date()
    first = today - dt.timedelta(days=WINDOW_DAYS - 2)  # day 1 (today − 6) is discarded

    def pick(t: F64, v: F64) -> tuple[F64, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        day, hour = _local(t)
        keep = (day >= first.toordinal()) & (day <= today.toordinal()) & (t <= now.timestamp())
        return v[keep], day[keep], hour[keep]

    s, s_day, s_hour = pick(t_sys, sys)
    d, _, d_hour = pick(t_dia, dia)
    if len(s) == 0:
        return None

    def mean_of(morning: bool | None) -> Mean:
        ms = np.ones(len(s), dtype=bool) if morning is None else (s_hour < 12) == morning
        md = np.ones(len(d), dtype=bool) if morning is None else (d_hour < 12) == morning
        return Mean(_mean(s[ms]), _mean(d[md]), int(ms.sum()))

    return BpSummary(
        first_day=first,
        last_day=today,
        morning=mean_of(True),
        evening=mean_of(False),
        overall=mean_of(None),
        days_with_readings=len(np.unique(s_day)),
    )
