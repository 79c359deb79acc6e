"""Staff-facing scoring (issue 12): staff counting, delay, stable-patient false alerts, baseline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from device_profiles.vocabulary import Condition, Kind
from simulators.baseline import baseline_alerts, cgm_low_times, one_per_day, weight_gain_times
from simulators.cohort import CohortConfig, generate_cohort
from simulators.scoring import DAYS_PER_MONTH, StaffAlert, score_staff, staff_time
from simulators.series import DAY_S, Episode, KindSeries, PatientSeries

T0 = datetime(2026, 10, 1, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)
T0_S = int(T0.timestamp())


def test_staff_time_uses_shown_route_and_old_engine_fallback() -> None:
    shown = T0 + 2 * H
    assert staff_time(T0, shown, "staff", "medium", engine_sets_shown=True) == shown
    assert staff_time(T0, None, "staff", "medium", engine_sets_shown=True) is None  # not (yet) shown
    for route in ("patient", "technical", "record"):
        assert staff_time(T0, shown, route, "high", engine_sets_shown=True) is None
    # Older engine: no row sets the column; non-info rows count from opened_at.
    assert staff_time(T0, None, "staff", "medium", engine_sets_shown=False) == T0
    assert staff_time(T0, None, "staff", "info", engine_sets_shown=False) is None


def test_delay_lead_staff_load_and_stable_false_alerts() -> None:
    ep = Episode("A", Condition.HEART_FAILURE, "decompensation", T0 + 10 * D, T0 + 16 * D)
    alerts = [
        StaffAlert("A", "HF1", T0 + 11 * D, T0 + 12 * D),  # shown 2 days after the start
        StaffAlert("A", "HF3", T0 + 10 * D, None, "patient"),  # patient route: no detection
        StaffAlert("B", "HF1", T0 + 20 * D, T0 + 20 * D),  # stable patient: false
        StaffAlert("B", "HF1", T0 + 25 * D, T0 + 25 * D),
    ]
    conditions: dict[str, tuple[Condition, ...]] = {"A": (Condition.HEART_FAILURE,), "B": (Condition.HEART_FAILURE,)}
    (row,) = score_staff(alerts, [ep], conditions, 30)
    months = 30 / DAYS_PER_MONTH
    assert row.detected == 1
    assert row.episodes == 1
    assert row.median_delay_h == 48.0
    assert row.median_lead_h == 96.0
    assert row.stable_patients == 1
    assert abs(row.staff_per_pm - 3 / (2 * months)) < 1e-9
    assert abs(row.false_staff_per_pm_stable - 2 / months) < 1e-9


def test_only_staff_shown_alert_is_not_a_detection() -> None:
    ep = Episode("A", Condition.HEART_FAILURE, "decompensation", T0 + 10 * D, T0 + 16 * D)
    alerts = [StaffAlert("A", "HF1", T0 + 11 * D, None, "record")]
    (row,) = score_staff(alerts, [ep], {"A": (Condition.HEART_FAILURE,)}, 30)
    assert row.detected == 0
    assert row.staff_per_pm == 0.0
    assert row.median_delay_h is None


def test_per_type_sensitivity_needs_twenty_episodes() -> None:
    eps = [Episode("A", Condition.DIABETES_T1, "hypoglycaemia", T0 + k * D, T0 + k * D + H) for k in range(20)] + [
        Episode("A", Condition.DIABETES_T1, "hyperglycaemia", T0 + 25 * D, T0 + 25 * D + H)
    ]
    alerts = [StaffAlert("A", "D1", T0 + k * D, T0 + k * D) for k in range(10)]
    (row,) = score_staff(alerts, eps, {"A": (Condition.DIABETES_T1,)}, 30)
    assert row.sensitivity_by_type == {"hypoglycaemia": (10, 20)}
    assert row.detected == 10
    assert row.episodes == 21


def test_cgm_low_needs_fifteen_minutes_and_fires_once_per_run() -> None:
    t = T0_S + np.arange(0, 60 * 60, 5 * 60, dtype=np.int64)  # 12 readings, 5 min apart
    g = np.array([5.0, 2.9, 2.8, 2.9, 5.0, 2.5, 2.6, 2.7, 2.8, 2.9, 5.0, 5.0])
    # First run lasts 10 minutes (no alert); second reaches 15 minutes at index 8.
    assert cgm_low_times(t, g) == [int(t[8])]


def test_weight_gain_over_three_days() -> None:
    t = T0_S + np.array([0, 1, 2, 3, 8], dtype=np.int64) * DAY_S
    w = np.array([80.0, 80.5, 81.0, 82.1, 84.0])
    # Day 3 is 2.1 kg above day 0; day 8 has no earlier weight within 3 days.
    assert weight_gain_times(t, w) == [int(t[3])]


def test_one_alert_per_patient_rule_and_day() -> None:
    times = [T0_S + 3600, T0_S + 7200, T0_S + DAY_S + 60]
    out = one_per_day("BP_HIGH", "A", times)
    assert [a.shown_at for a in out] == [T0 + H, T0 + D + timedelta(seconds=60)]


def test_baseline_on_a_hand_built_series() -> None:
    cohort = generate_cohort(CohortConfig(1, seed=3, days=2))
    patient = cohort.patients[0]
    t = T0_S + np.array([3600, 3600, 7200, DAY_S], dtype=np.int64)  # a duplicate resend
    bp = KindSeries(
        Kind.BLOOD_PRESSURE,
        t,
        {
            "systolic": np.array([185.0, 185.0, 150.0, 140.0]),
            "diastolic": np.array([90.0, 90.0, 112.0, 80.0]),
            "pulse": np.array([70.0, 70.0, 125.0, 70.0]),
        },
        np.zeros(4, dtype=np.int8),
        np.array([""] * 4),
    )
    sim = PatientSeries({Kind.BLOOD_PRESSURE: bp})
    out = baseline_alerts([(patient, sim)], T0_S, T0_S + 2 * DAY_S)
    assert sorted((a.rule_id, a.shown_at) for a in out) == [("BP_HIGH", T0 + H), ("PULSE_HIGH", T0 + 2 * H)]


def test_missing_data_alerts_are_load_but_detect_nothing() -> None:
    ep = Episode("A", Condition.HEART_FAILURE, "decompensation", T0 + 10 * D, T0 + 16 * D)
    gap = [StaffAlert("A", "HF9", T0 + 11 * D, T0 + 11 * D)]
    conditions: dict[str, tuple[Condition, ...]] = {"A": (Condition.HEART_FAILURE,)}
    (counted,) = score_staff(gap, [ep], conditions, 30)
    assert counted.detected == 1  # without the distinction a gap "finds" the episode
    (row,) = score_staff(gap, [ep], conditions, 30, not_detections=frozenset({"HF9"}))
    assert row.detected == 0
    assert row.staff_per_pm == counted.staff_per_pm > 0
