"""ESH seven-day home BP: day 1 discarded, morning and evening means, reading counts."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from clinic_api.bp_summary import summarise
from clinic_api.labels import TZ


def _at(day: int, hour: int, minute: int = 0) -> float:
    return dt.datetime(2024, 5, day, hour, minute, tzinfo=TZ).timestamp()


def test_week_without_first_day_morning_and_evening() -> None:
    now = dt.datetime(2024, 5, 20, 21, 0, tzinfo=TZ)
    t, s, d = [], [], []
    t += [_at(13, 8), _at(14, 8), _at(14, 20)]  # before the window, and day 1 (discarded)
    s += [210.0, 200.0, 198.0]
    d += [120.0, 118.0, 117.0]
    for day in range(15, 21):
        t += [_at(day, 7, 30), _at(day, 20)]
        s += [130.0 + (day - 15), 140.0]
        d += [80.0, 90.0]
    t += [_at(20, 22)]  # later than now
    s += [250.0]
    d += [150.0]
    ts = np.array(t)
    bp = summarise(ts, np.array(s), ts, np.array(d), now)
    assert bp is not None
    assert bp.first_day == dt.date(2024, 5, 15)
    assert bp.last_day == dt.date(2024, 5, 20)
    assert bp.morning.n == 6
    assert bp.evening.n == 6
    assert bp.overall.n == 12
    assert bp.morning.systolic == pytest.approx(132.5)  # 130..135
    assert bp.morning.diastolic == pytest.approx(80.0)
    assert bp.evening.systolic == pytest.approx(140.0)
    assert bp.evening.diastolic == pytest.approx(90.0)
    assert bp.overall.systolic == pytest.approx(136.25)
    assert bp.overall.diastolic == pytest.approx(85.0)
    assert bp.days_with_readings == 6
    assert bp.sufficient


def test_too_few_readings_is_flagged_and_none_is_none() -> None:
    now = dt.datetime(2024, 5, 20, 21, 0, tzinfo=TZ)
    ts = np.array([_at(19, 8), _at(19, 19)])
    bp = summarise(ts, np.array([150.0, 160.0]), ts, np.array([95.0, 99.0]), now)
    assert bp is not None
    assert not bp.sufficient
    assert bp.morning.n == 1
    assert bp.evening.systolic == 160.0
    only_day1 = np.array([_at(14, 8)])
    assert summarise(only_day1, np.array([150.0]), only_day1, np.array([90.0]), now) is None
