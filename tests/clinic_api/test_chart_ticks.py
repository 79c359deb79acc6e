"""Axis ticks (nice steps, Stockholm day/week boundaries across DST), gaps and label stacking."""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import pytest

from clinic_api.charts import LABEL_STEP, _stack_labels, cluster_marks
from clinic_api.labels import TZ
from clinic_api.ticks import gap_threshold_s, nice_step, segments, time_ticks, value_ticks

H = 3600.0


@pytest.mark.parametrize(
    ("raw", "step"),
    [(0.9, 1.0), (1.0, 1.0), (1.3, 2.0), (2.2, 2.5), (3.0, 5.0), (7.0, 10.0), (0.23, 0.25), (14.0, 20.0), (0.04, 0.05)],
)
def test_nice_step_is_1_2_2_5_5_times_a_power_of_ten(raw: float, step: float) -> None:
    assert nice_step(raw) == pytest.approx(step)


def test_value_ticks_cover_the_data_on_whole_steps() -> None:
    vt = value_ticks(1.2, 21.0, 5)  # the reviewer's 1.2 / 11.1 / 21.0 axis
    assert vt.step == 5.0
    assert vt.values == (0.0, 5.0, 10.0, 15.0, 20.0, 25.0)
    assert [vt.label(v) for v in vt.values] == ["0", "5", "10", "15", "20", "25"]
    g = value_ticks(3.0, 13.9, 6)
    assert g.step == 2.5
    assert g.lo == 2.5
    assert g.hi == 15.0
    assert g.label(7.5) == "7,5"  # decimal comma
    small = value_ticks(0.52, 0.88, 5)
    assert small.step == 0.1
    assert small.label(0.6) == "0,6"
    flat = value_ticks(80.0, 80.0)
    assert flat.lo < 80.0 < flat.hi


def _midnight(y: int, m: int, d: int) -> float:
    return dt.datetime(y, m, d, tzinfo=TZ).timestamp()


def test_daily_ticks_fall_on_stockholm_midnight_across_spring_dst() -> None:
    t0 = dt.datetime(2024, 3, 29, 12, tzinfo=TZ).timestamp()
    t1 = dt.datetime(2024, 4, 2, 12, tzinfo=TZ).timestamp()
    ts = time_ticks(t0, t1, max_labels=8)
    assert [t.label for t in ts] == ["30 mar", "31 mar", "1 apr", "2 apr"]
    assert all(t.major for t in ts)
    assert [t.t_s for t in ts] == [_midnight(2024, 3, d) for d in (30, 31)] + [_midnight(2024, 4, d) for d in (1, 2)]
    steps = np.diff([t.t_s for t in ts]) / H
    assert list(steps) == [24.0, 23.0, 24.0]  # 31 March has 23 hours
    for t in ts:
        local = dt.datetime.fromtimestamp(t.t_s, TZ)
        assert (local.hour, local.minute) == (0, 0)


def test_daily_ticks_across_autumn_dst_and_december_labels() -> None:
    t0 = _midnight(2024, 10, 26)
    ts = time_ticks(t0, _midnight(2024, 10, 29), max_labels=8)
    assert list(np.diff([t.t_s for t in ts]) / H) == [24.0, 25.0, 24.0]  # 27 October has 25 hours
    dec = time_ticks(_midnight(2024, 12, 2) + H, _midnight(2024, 12, 5), max_labels=8)
    assert [t.label for t in dec] == ["3 dec", "4 dec", "5 dec"]


def test_weekly_ticks_on_mondays_for_a_month_and_fortnights_for_a_quarter() -> None:
    t0 = dt.datetime(2024, 10, 10, 9, tzinfo=TZ).timestamp()
    month = time_ticks(t0, t0 + 30 * 86400, max_labels=8)
    majors = [t for t in month if t.major]
    assert [t.label for t in majors] == ["14 okt", "21 okt", "28 okt", "4 nov"]
    assert all(dt.datetime.fromtimestamp(t.t_s, TZ).weekday() == 0 for t in majors)
    assert len(month) > len(majors)  # the other day boundaries are faint minor lines
    quarter = [t for t in time_ticks(t0, t0 + 90 * 86400, max_labels=8) if t.major]
    assert 4 <= len(quarter) <= 8
    assert {round(b - a) for a, b in zip([t.t_s for t in quarter], [t.t_s for t in quarter][1:], strict=False)} <= {
        14 * 86400,
        14 * 86400 + 3600,  # a fortnight across the October change is an hour longer
    }
    year = [t.label for t in time_ticks(t0, t0 + 365 * 86400, max_labels=8)]
    assert "jan 2025" in year
    assert len(year) <= 8


def test_gap_threshold_spot_and_continuous() -> None:
    twice_daily = np.arange(0, 10 * 86400, 12 * H)
    assert gap_threshold_s(twice_daily, continuous=False) == 86400.0  # one missed reading is no gap
    daily = np.arange(0, 10 * 86400, 24 * H)
    assert gap_threshold_s(daily, continuous=False) == 36 * H  # a missed day is
    cgm = np.arange(0, 86400, 300.0)
    assert gap_threshold_s(cgm, continuous=True) == 20 * 60.0
    assert gap_threshold_s(cgm, continuous=True, bucket_s=3 * H) == 4.5 * H


def test_segments_split_at_gaps() -> None:
    t = np.array([0.0, 1.0, 2.0, 10.0, 11.0, 30.0])
    assert segments(t, 2.0) == [(0, 3), (3, 5), (5, 6)]
    assert segments(np.zeros(0), 1.0) == []
    assert segments(t, 100.0) == [(0, 6)]


def test_threshold_labels_never_overlap() -> None:
    desired = [100.0, 101.0, 103.0, 180.0, 181.0]
    ys = _stack_labels(desired, top=20.0, bottom=182.0)
    s = sorted(ys)
    assert all(b - a >= LABEL_STEP - 1e-9 for a, b in itertools.pairwise(s))
    assert all(20.0 <= v <= 182.0 for v in ys)
    assert ys[0] == 100.0  # the first keeps its place


def test_markers_near_each_other_are_grouped() -> None:
    groups = cluster_marks([700.0, 100.0, 705.0, 712.0, 300.0])
    assert groups == [[1], [4], [0, 2, 3]]
