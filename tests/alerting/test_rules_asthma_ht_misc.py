"""Asthma, hypertension, no-data and partial NEWS2 rules on hand-built series."""

from __future__ import annotations

import numpy as np

from alerting.rules import (
    BP_PULSE,
    DIASTOLIC,
    PEF,
    RELIEVER,
    SPO2,
    SYMPTOM_HTN,
    SYSTOLIC,
    TEMPERATURE,
)
from alerting.rules.across import news2_scores
from tests.alerting.helpers import DAY, HOUR, MIN, NOW, cohort, fire, series, severity

ASTHMA = cohort("asthma", personal_best_pef=500.0)
HT = cohort("hypertension")


def blows(*values: float, ago: float = HOUR) -> dict[str, object]:
    return {PEF: series([(ago + (len(values) - k) * 20, v) for k, v in enumerate(values)])}


def test_pef_zones_are_exclusive_bands_on_best_of_three() -> None:
    # best 390 = 78 %; one session in the yellow zone is the patient's (info), see the repeat test
    assert severity("A1", blows(350.0, 390.0, 380.0), ASTHMA) == "info"
    assert severity("A1", blows(350.0, 400.0, 380.0), ASTHMA) is None  # exactly 80 %
    assert severity("A2", blows(280.0, 290.0), ASTHMA) == "high"
    assert severity("A1", blows(280.0, 290.0), ASTHMA) is None  # the A2 band, not A1
    assert severity("A3", blows(200.0, 240.0), ASTHMA) == "critical"
    assert severity("A2", blows(200.0, 240.0), ASTHMA) is None
    assert severity("A1", blows(200.0), cohort("asthma")) is None  # no personal best: no zones


def test_a1_needs_a_second_session_in_the_zone() -> None:
    twice = {PEF: series([(13 * HOUR, 370.0), (13 * HOUR - 20, 385.0), (HOUR, 390.0), (HOUR - 20, 380.0)])}
    assert severity("A1", twice, ASTHMA) == "low"
    # The earlier session was fine: still only the patient's.
    recovered = {PEF: series([(13 * HOUR, 450.0), (HOUR, 390.0)])}
    assert severity("A1", recovered, ASTHMA) == "info"
    # Sessions more than 24 h apart are not a repeat.
    far = {PEF: series([(26 * HOUR, 370.0), (HOUR, 390.0)])}
    assert severity("A1", far, ASTHMA) == "info"
    # A previous session in a lower zone confirms too.
    from_red = {PEF: series([(13 * HOUR, 280.0), (HOUR, 390.0)])}
    assert severity("A1", from_red, ASTHMA) == "low"


def test_a1_override() -> None:
    c = cohort("asthma", personal_best_pef=500.0, thresholds={"A1": {"below_pct": 85}})
    f = fire("A1", blows(410.0), c)
    assert f is not None
    assert f.evidence["thresholds"]["below_pct"] == {"value": 85.0, "source": "care_plan"}


def test_a4_two_mornings_below_baseline() -> None:
    two = {PEF: series([(DAY + 5 * HOUR, 390.0), (5 * HOUR, 400.0)])}
    assert severity("A4", two, ASTHMA) == "medium"  # 78 % and 80 % of 500
    one = {PEF: series([(DAY + 5 * HOUR, 450.0), (5 * HOUR, 380.0)])}
    assert severity("A4", one, ASTHMA) is None
    # without a personal best the baseline is the median of days −28..−8 (needs ≥ 7)
    hist = [(k * DAY + 5 * HOUR, 500.0) for k in range(8, 20)]
    assert (
        severity("A4", {PEF: series([*hist, (DAY + 5 * HOUR, 390.0), (5 * HOUR, 395.0)])}, cohort("asthma")) == "medium"
    )
    assert (
        severity("A4", {PEF: series([*hist[:5], (DAY + 5 * HOUR, 300.0), (5 * HOUR, 300.0)])}, cohort("asthma")) is None
    )


def test_a5_diurnal_variability() -> None:
    variable = {
        PEF: series([(k * DAY + 10 * HOUR, 400.0) for k in range(8)] + [(k * DAY + 2 * HOUR, 450.0) for k in range(8)])
    }
    assert severity("A5", variable, ASTHMA) == "low"  # 50/425 = 11.8 %
    steady = {
        PEF: series([(k * DAY + 10 * HOUR, 400.0) for k in range(8)] + [(k * DAY + 2 * HOUR, 420.0) for k in range(8)])
    }
    assert severity("A5", steady, ASTHMA) is None
    few = {
        PEF: series([(k * DAY + 10 * HOUR, 400.0) for k in range(5)] + [(k * DAY + 2 * HOUR, 480.0) for k in range(5)])
    }
    assert severity("A5", few, ASTHMA) is None  # < 7 days: insufficient


def test_a6_reliever() -> None:
    base = [(k * DAY + 3 * HOUR, 1.0) for k in range(2, 9)]
    rise = [(DAY + 3 * HOUR, 5.0), (3 * HOUR, 6.0)]
    assert severity("A6", {RELIEVER: series(base + rise)}, ASTHMA) == "medium"
    three_days = [(k * DAY + 3 * HOUR, 1.0) for k in range(3)]
    assert severity("A6", {RELIEVER: series(three_days)}, ASTHMA) == "info"
    assert severity("A6", {RELIEVER: series(three_days[:2])}, ASTHMA) is None


def bp_week(sys_: float, dia: float, per_day: int = 2, days: int = 7) -> dict[str, object]:
    times = [d * DAY + 2 * HOUR + k * 10 * HOUR for d in range(days) for k in range(per_day)]
    return {SYSTOLIC: series([(t, sys_) for t in times]), DIASTOLIC: series([(t, dia) for t in times])}


def test_h1_weekly_mean_and_h6_insufficient() -> None:
    assert severity("H1", bp_week(136.0, 80.0), HT) == "low"
    assert severity("H1", bp_week(134.0, 85.0), HT) == "low"  # diastolic on the threshold
    assert severity("H1", bp_week(134.0, 84.0), HT) is None
    assert severity("H1", bp_week(150.0, 95.0, per_day=1), HT) is None  # < 12 readings: no mean
    assert severity("H6", bp_week(150.0, 95.0, per_day=1), HT) == "info"
    assert severity("H6", bp_week(150.0, 95.0), HT) is None


def test_h1_discards_day_one() -> None:
    d = bp_week(120.0, 75.0)
    # readings 6 days ago (day 1 of the week) are very high but discarded
    first = [(6 * DAY + 2 * HOUR + k * MIN, 200.0) for k in range(10)]
    d[SYSTOLIC] = d[SYSTOLIC].concat(series(first))  # type: ignore[attr-defined]
    assert severity("H1", d, HT) is None


def test_h2_target_from_care_plan() -> None:
    assert severity("H2", bp_week(130.0, 75.0), HT) == "info"
    older = cohort("hypertension", thresholds={"H2": {"target_systolic_mmhg": 139}})
    assert severity("H2", bp_week(130.0, 75.0), older) is None


def test_h2_default_target_follows_age() -> None:
    week = bp_week(135.0, 75.0)
    assert severity("H2", week, cohort("hypertension", age_years=70.0)) == "info"  # ≤ 70 y: 129/79
    assert severity("H2", week, cohort("hypertension", age_years=71.0)) is None  # > 70 y: 139/79
    assert severity("H2", bp_week(140.0, 75.0), cohort("hypertension", age_years=80.0)) == "info"
    assert severity("H2", week, cohort("hypertension")) == "info"  # age unknown: the stricter target
    # The care plan still wins over the age default, and the evidence says where it came from.
    strict = cohort("hypertension", age_years=80.0, thresholds={"H2": {"target_systolic_mmhg": 130}})
    finding = fire("H2", week, strict)
    assert finding is not None
    assert finding.evidence["thresholds"]["target_systolic_mmhg"] == {"value": 130.0, "source": "care_plan"}
    older = fire("H2", bp_week(140.0, 75.0), cohort("hypertension", age_years=80.0))
    assert older is not None
    assert older.evidence["thresholds"]["target_systolic_mmhg"] == {"value": 139.0, "source": "default"}


def test_h3_very_high() -> None:
    d = {
        SYSTOLIC: series([(HOUR + 5 * MIN, 185.0), (HOUR, 174.0)]),
        DIASTOLIC: series([(HOUR + 5 * MIN, 95.0), (HOUR, 95.0)]),
    }
    assert severity("H3", d, HT) is None  # mean of the duplicate 179.5: the first 185 alone does not fire
    d2 = {SYSTOLIC: series([(HOUR + 5 * MIN, 185.0), (HOUR, 175.0)]), DIASTOLIC: series([(HOUR, 95.0)])}
    assert severity("H3", d2, HT) == "high"  # mean exactly 180
    assert severity("H3", {DIASTOLIC: series([(HOUR, 110.0)])}, HT) == "high"
    assert severity("H3", {DIASTOLIC: series([(HOUR, 109.0)])}, HT) is None


def test_h3_with_symptoms_the_same_day_is_critical() -> None:
    very_high = {SYSTOLIC: series([(HOUR, 190.0)])}
    symptoms_today = {**very_high, SYMPTOM_HTN[0]: series([(2 * HOUR, 1.0)])}
    assert severity("H3", symptoms_today, HT) == "critical"
    symptoms_yesterday = {**very_high, SYMPTOM_HTN[0]: series([(DAY + HOUR, 1.0)])}
    assert severity("H3", symptoms_yesterday, HT) == "high"
    no_symptoms = {**very_high, SYMPTOM_HTN[0]: series([(2 * HOUR, 0.0)])}
    assert severity("H3", no_symptoms, HT) == "high"
    # Symptoms alone, with blood pressure below the threshold, are not H3.
    assert severity("H3", {SYSTOLIC: series([(HOUR, 150.0)]), SYMPTOM_HTN[0]: series([(2 * HOUR, 1.0)])}, HT) is None


def test_h4_two_days_within_seven() -> None:
    two = {SYSTOLIC: series([(3 * DAY, 165.0), (HOUR, 161.0)])}
    assert severity("H4", two, HT) == "medium"
    same_day = {SYSTOLIC: series([(2 * HOUR, 165.0), (HOUR, 161.0)])}
    assert severity("H4", same_day, HT) is None
    old = {SYSTOLIC: series([(8 * DAY, 165.0), (HOUR, 161.0)])}
    assert severity("H4", old, HT) is None


def test_h5_low_or_falling() -> None:
    assert severity("H5", {SYSTOLIC: series([(HOUR, 89.0)])}, HT) == "medium"
    base = [(k * DAY + 2 * HOUR, 140.0) for k in range(1, 8)]
    assert severity("H5", {SYSTOLIC: series([*base, (HOUR, 120.0)])}, HT) == "medium"
    assert severity("H5", {SYSTOLIC: series([*base, (HOUR, 121.0)])}, HT) is None
    # One stressful day in the baseline week does not make an ordinary day a "fall":
    # mean baseline 145 (124 would be a 21 mmHg fall), median 140 (a 16 mmHg one).
    stressed = [(k * DAY + 2 * HOUR, 175.0 if k == 3 else 140.0) for k in range(1, 8)]
    assert severity("H5", {SYSTOLIC: series([*stressed, (HOUR, 124.0)])}, HT) is None
    assert severity("H5", {SYSTOLIC: series([*stressed, (HOUR, 118.0)])}, HT) == "medium"  # a real fall


def test_nodata_schedule() -> None:
    c = cohort("copd", schedule={"spo2": 1})
    assert severity("NODATA", {SPO2: series([(40 * HOUR, 95.0)])}, c) == "info"
    assert severity("NODATA", {SPO2: series([(80 * HOUR, 95.0)])}, c) == "low"
    assert severity("NODATA", {SPO2: series([(10 * HOUR, 95.0)])}, c) is None
    assert severity("NODATA", {}, cohort("copd")) is None  # nothing scheduled


def test_news2_bands() -> None:
    total, worst = news2_scores(
        np.array([75.0, 135.0, 95.0]),
        np.array([97.0, 97.0, 93.0]),
        np.array([120.0, 120.0, 105.0]),
        np.array([37.0, np.nan, 38.5]),
        np.array([False, False, False]),
    )
    assert total.tolist() == [0.0, 3.0, 1.0 + 2.0 + 1.0 + 1.0]
    assert worst.tolist() == [0.0, 3.0, 2.0]


def test_news2_rule() -> None:
    c = cohort()
    high = {
        BP_PULSE: series([(10 * MIN, 112.0)]),
        SPO2: series([(10 * MIN, 93.0)]),
        SYSTOLIC: series([(10 * MIN, 105.0)]),
    }
    assert severity("NEWS2", high, c) == "high"  # 2 + 2 + 1 = 5
    crit = {**high, TEMPERATURE: series([(5 * MIN, 39.5)])}
    assert severity("NEWS2", crit, c) == "critical"  # 7
    single3 = {SPO2: series([(10 * MIN, 91.0)])}
    assert severity("NEWS2", single3, c) == "high"
    stale = {SPO2: series([(2 * HOUR, 85.0)])}
    assert severity("NEWS2", stale, c) is None
    hyper = cohort(hypercapnic=True)
    assert severity("NEWS2", single3, hyper) is None  # scale 2: 91 % scores 0


def test_gaps_count_only_since_monitoring_began() -> None:
    """A patient enrolled this morning has not 'missed' the days before enrolment."""
    sched = {"schedule": {"spo2": 1.0}}
    fresh = cohort("copd", monitored_since=[NOW - 10 * HOUR], **sched)
    week = cohort("copd", monitored_since=[NOW - 7 * DAY], **sched)
    assert severity("NODATA", {}, fresh) is None
    assert severity("NODATA", {}, cohort("copd", monitored_since=[NOW - 40 * HOUR], **sched)) == "info"
    assert severity("NODATA", {}, week) == "low"
    # D10 likewise for a CGM user, HF9 for the daily weight.
    cgm_fresh = cohort("diabetes_t1", monitored_since=[NOW - 5 * HOUR], schedule={"glucose_cgm": 288.0})
    assert severity("D10", {}, cgm_fresh) is None
    hf_fresh = cohort("heart_failure", monitored_since=[NOW - 20 * HOUR])
    hf_old = cohort("heart_failure", monitored_since=[NOW - 10 * DAY])
    assert severity("HF9", {}, hf_fresh) is None
    assert severity("HF9", {}, hf_old) == "low"
