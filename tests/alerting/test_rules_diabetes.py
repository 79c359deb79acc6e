"""Diabetes rules D1-D10 on hand-built series."""

from __future__ import annotations

import pytest

from alerting.rules import CAPILLARY, CGM
from tests.alerting.helpers import (
    DAY,
    HIGH_CENSORED,
    HOUR,
    LOW_CENSORED,
    MIN,
    NOW,
    cgm,
    cohort,
    fire,
    series,
    severity,
)

T1 = cohort("diabetes_t1")
T2 = cohort("diabetes_t2")


def test_d1_fires_after_15_minutes_below_3_9() -> None:
    # 4 readings 5 min apart span exactly 15 min: on the threshold, fires.
    assert severity("D1", {CGM: cgm([5.0, 3.8, 3.7, 3.6, 3.8])}, T1) == "medium"


def test_d1_does_not_fire_for_10_minutes() -> None:
    assert severity("D1", {CGM: cgm([5.0, 3.8, 3.7, 3.6, 4.2])}, T1) is None


def test_d1_value_exactly_3_9_is_not_low() -> None:
    assert severity("D1", {CGM: cgm([3.9] * 8)}, T1) is None


def test_d1_sensor_gap_breaks_the_episode() -> None:
    # 25 min between readings: no evidence the low lasted.
    s = series([(30 * MIN, 3.5), (5 * MIN, 3.5), (0, 3.5)])
    assert severity("D1", {CGM: s}, T1) is None


def test_d1_censored_low_counts_as_low() -> None:
    assert severity("D1", {CGM: cgm([LOW_CENSORED] * 4)}, T1) == "medium"


def test_d1_care_plan_override_and_evidence() -> None:
    c = cohort("diabetes_t1", thresholds={"D1": {"threshold_mmol_l": 4.5}})
    f = fire("D1", {CGM: cgm([4.4, 4.3, 4.2, 4.4])}, c)
    assert f is not None
    assert f.evidence["thresholds"]["threshold_mmol_l"] == {"value": 4.5, "source": "care_plan"}
    assert f.evidence["thresholds"]["min_duration_min"]["source"] == "default"
    assert [r["value"] for r in f.evidence["readings"]] == [4.4, 4.3, 4.2, 4.4]
    assert severity("D1", {CGM: cgm([4.4, 4.3, 4.2, 4.4])}, T1) is None


def test_d1_not_for_patients_without_diabetes() -> None:
    assert severity("D1", {CGM: cgm([3.0] * 6)}, cohort("copd")) is None


def test_d1_old_episode_outside_lookback() -> None:
    assert severity("D1", {CGM: cgm([3.0] * 6, end_ago=25 * HOUR)}, T1) is None


def test_d2_level_2() -> None:
    assert severity("D2", {CGM: cgm([2.9, 2.8, 2.9, 2.9])}, T1) == "high"
    assert severity("D2", {CGM: cgm([3.0, 3.0, 3.0, 3.0])}, T1) is None  # 3.0 is not < 3.0


def test_d3_prolonged_needs_more_than_120_minutes() -> None:
    exactly_120 = cgm([3.5] * 25)  # 24 steps of 5 min = 120 min
    assert severity("D3", {CGM: exactly_120}, T1) is None
    assert severity("D3", {CGM: cgm([3.5] * 26)}, T1) == "high"


def test_d4_capillary_levels() -> None:
    assert severity("D4", {CAPILLARY: series([(HOUR, 3.5)])}, T2) == "medium"
    assert severity("D4", {CAPILLARY: series([(HOUR, 2.9)])}, T2) == "high"
    assert severity("D4", {CAPILLARY: series([(HOUR, 3.9)])}, T2) is None
    assert severity("D4", {CAPILLARY: series([(HOUR, 3.0)])}, T2) == "medium"  # on the high threshold
    c = cohort("diabetes_t2", thresholds={"D4": {"medium_below_mmol_l": 4.5}})
    assert severity("D4", {CAPILLARY: series([(HOUR, 4.2)])}, c) == "medium"


def test_d4_highest_severity_wins_over_newest() -> None:
    s = series([(3 * HOUR, 2.5), (HOUR, 3.5)])
    f = fire("D4", {CAPILLARY: s}, T2)
    assert f is not None
    assert f.severity == "high"
    assert f.value == 2.5


def test_d6_falling_rate() -> None:
    # 15 min from 8.0 to 6.2: 0.12 mmol/L/min → low; to 5.3: 0.18 → medium.
    assert severity("D6", {CGM: cgm([8.0, 7.4, 6.8, 6.2])}, T1) == "low"
    assert severity("D6", {CGM: cgm([8.0, 7.1, 6.2, 5.3])}, T1) == "medium"
    assert severity("D6", {CGM: cgm([8.0, 7.9, 7.8, 7.7])}, T1) is None
    assert severity("D6", {CGM: cgm([8.0, 7.9, 7.8, 7.7, 7.6, 7.0])}, T1) is None


def test_d6_censored_values_have_no_slope() -> None:
    assert severity("D6", {CGM: cgm([8.0, 6.0, 4.0, LOW_CENSORED])}, T1) is None


def test_d7_hyper_low_then_medium_in_type_1() -> None:
    assert severity("D7", {CGM: cgm([14.5] * 4)}, T1) == "low"
    assert severity("D7", {CGM: cgm([14.5] * 25)}, T1) == "medium"
    assert severity("D7", {CGM: cgm([14.5] * 25)}, T2) == "medium"  # hours above 13.9: either type
    assert (
        severity("D7", {CGM: cgm([14.5] * 25)}, cohort("diabetes_t2", thresholds={"D7": {"type2_duration_min": 180}}))
        == "low"
    )
    assert severity("D7", {CGM: cgm([HIGH_CENSORED] * 4)}, T1) == "low"
    assert severity("D7", {CGM: cgm([13.9] * 30)}, T1) is None


def test_d7_high_after_six_hours_above_13_9() -> None:
    assert severity("D7", {CGM: cgm([15.0] * 72)}, T1) == "medium"  # 355 min
    assert severity("D7", {CGM: cgm([15.0] * 73)}, T1) == "high"  # 360 min
    assert severity("D7", {CGM: cgm([15.0] * 73)}, T2) == "high"
    plan = cohort("diabetes_t1", thresholds={"D7": {"sustained_duration_min": 480}})
    assert severity("D7", {CGM: cgm([15.0] * 73)}, plan) == "medium"


def _lows(days_ago: list[float], minutes: int = 20, value: float = 2.8) -> dict[str, object]:
    """CGM at 6.0 with one level 2 low of ``minutes`` ending each of ``days_ago`` days before NOW."""
    readings: list[tuple[float, float]] = []
    for d in sorted(days_ago, reverse=True):
        end = d * DAY
        readings += [(end + 60 * MIN - k * 5 * MIN, 6.0) for k in range(6)]  # an hour of normal first
        readings += [(end + minutes * MIN - k * 5 * MIN, value) for k in range(minutes // 5 + 1)]
        readings += [(end - (k + 1) * 5 * MIN, 6.0) for k in range(6)]
    return {CGM: series(sorted(readings, key=lambda r: -r[0]))}


def test_d11_fires_at_the_third_level_2_low_within_7_days() -> None:
    f = fire("D11", _lows([6.0, 3.0, 0.1]), T1)
    assert f is not None
    assert (f.severity, f.value) == ("high", 3.0)
    assert severity("D11", _lows([3.0, 0.1]), T1) is None  # two lows are not yet a pattern
    assert severity("D11", _lows([7.5, 3.0, 0.1]), T1) is None  # the first is more than 7 days before
    assert severity("D11", _lows([6.0, 3.0, 0.1], minutes=10), T1) is None  # < 3.0 too briefly: level 1
    assert severity("D11", _lows([6.0, 3.0, 0.1], value=3.0), T1) is None  # 3.0 is not < 3.0
    assert severity("D11", _lows([6.0, 3.0, 0.1]), T2) == "high"  # the rule is the same in type 2
    # The care plan's count: a patient whose pattern staff want to see at the 2nd low.
    assert severity("D11", _lows([3.0, 0.1]), cohort("diabetes_t1", thresholds={"D11": {"episodes": 2}})) == "high"
    # The 3rd low was more than a day ago: the pattern was told then (D11 looks back 24 h).
    assert severity("D11", _lows([6.0, 4.0, 2.0]), T1) is None


def test_d11_counts_a_capillary_low_and_merges_onsets_within_two_hours() -> None:
    data = _lows([6.0, 3.0])
    cap = series([(1 * HOUR, 2.7)])
    f = fire("D11", {**data, CAPILLARY: cap}, T1)
    assert f is not None
    assert f.value == 3.0
    # A capillary check of the same low (within 2 h of its CGM onset) is the same episode.
    same = series([(3.0 * DAY + 10 * MIN, 2.7)])
    assert severity("D11", {**_lows([6.0, 3.0]), CAPILLARY: same}, T1) is None
    # A CGM bobbing around 3.0: two runs < 3.0 of 15 min an hour apart are one episode, so
    # with one earlier low that makes two, not three.
    bob = [(0.1 * DAY + m * MIN, 2.8 if (m // 5) % 12 < 4 else 3.2) for m in range(0, 120, 5)]
    one = _lows([3.0])[CGM]
    earlier = [(float(NOW - t), float(v)) for t, v in zip(one.t, one.v, strict=True)]
    merged = series(sorted([*earlier, *bob], key=lambda r: -r[0]))
    assert severity("D11", {CGM: merged}, T1) is None
    assert severity("D11", {CGM: merged}, cohort("diabetes_t1", thresholds={"D11": {"episodes": 2}})) == "high"


def _two_weeks(value_fn: object, every: int = 1) -> object:
    n = 14 * 288
    vals = [value_fn(k) for k in range(0, n, every)]  # type: ignore[operator]
    return cgm(vals, step=5 * MIN * every)


def test_d9_insufficient_and_d8_needs_sufficient_data() -> None:
    sparse = _two_weeks(lambda k: 2.5, every=2)  # 50 % of the expected readings
    assert severity("D9", {CGM: sparse}, T1) == "info"
    assert severity("D8", {CGM: sparse}, T1) is None  # metrics insufficient: no guess


def test_d8_targets() -> None:
    good = _two_weeks(lambda k: 6.0 + (k % 3) * 0.5)
    assert severity("D8", {CGM: good}, T1) is None
    assert severity("D9", {CGM: good}, T1) is None
    lows = _two_weeks(lambda k: 3.5 if k % 20 == 0 else 6.5)  # 5 % below 3.9
    f = fire("D8", {CGM: lows}, T1)
    assert f is not None
    assert f.severity == "low"
    older = cohort("diabetes_t1", thresholds={"D8": {"tbr_3_9_max_pct": 6}})
    assert severity("D8", {CGM: lows}, older) is None


def test_d8_cv() -> None:
    swings = _two_weeks(lambda k: 4.0 if k % 2 else 9.9)  # all in range, CV ≈ 42 %
    assert severity("D8", {CGM: swings}, T1) == "low"


def test_d10_gap() -> None:
    assert severity("D10", {CGM: cgm([6.0], end_ago=25 * HOUR)}, T1) == "info"
    assert severity("D10", {CGM: cgm([6.0], end_ago=73 * HOUR)}, T1) == "low"
    assert severity("D10", {CGM: cgm([6.0], end_ago=23 * HOUR)}, T1) is None
    scheduled = cohort("diabetes_t1", schedule={"glucose_cgm": 288})
    assert severity("D10", {}, scheduled) == "low"
    assert severity("D10", {}, T1) is None  # no CGM in use


@pytest.mark.parametrize("days_ago", [1.5, 3.5])
def test_d10_evidence_time_is_when_the_gap_crossed(days_ago: float) -> None:
    f = fire("D10", {CGM: cgm([6.0], end_ago=days_ago * DAY)}, T1)
    assert f is not None
    assert f.value == pytest.approx(days_ago * 24)


def test_d5_forecast_urgent_low() -> None:
    # falling 0.1 mmol/L/min from 6.5: 5.0 now, 3.0 predicted in 20 min → high
    assert severity("D5", {CGM: cgm([6.5, 6.0, 5.5, 5.0])}, T1) == "high"
    # falling 0.05/min: 4.25 now → 3.25 predicted, above 3.1
    assert severity("D5", {CGM: cgm([5.0, 4.75, 4.5, 4.25])}, T1) is None
    # exactly on the threshold: 5.1 − 0.1 × 20 = 3.1 → fires (≤)
    assert severity("D5", {CGM: cgm([6.6, 6.1, 5.6, 5.1])}, T1) == "high"
    # already low: D1/D2 cover it
    assert severity("D5", {CGM: cgm([5.0, 4.5, 4.0, 3.5])}, T1) is None
    assert severity("D5", {CGM: cgm([6.5, 6.0, 5.5, LOW_CENSORED])}, T1) is None


def test_d5_needs_the_latest_minutes_to_agree() -> None:
    # A post-meal fall flattening towards its nadir: the 15-min slope projects 3.0, the last
    # 5 minutes (-0.02/min) project 4.7: no real crossing ahead.
    assert severity("D5", {CGM: cgm([6.6, 5.8, 5.1, 5.0])}, T1) is None
    # Falling steadily at the end too: a real crossing.
    assert severity("D5", {CGM: cgm([6.6, 6.1, 5.6, 5.1])}, T1) == "high"


def test_d5_is_quiet_for_an_hour_after_a_low() -> None:
    recovering = [3.5, 3.6, 3.8, 4.5, 5.5, 6.5, 6.0, 5.5, 5.0]  # a bounce after a treated low
    assert severity("D5", {CGM: cgm(recovering)}, T1) is None
    later = [3.5, 3.6, 3.8] + [4.5, 5.5, 6.5] + [7.0] * 12 + [6.5, 6.0, 5.5, 5.0]
    assert severity("D5", {CGM: cgm(later)}, T1) == "high"
