"""Scoring: the matching rules on hand-made examples, and loading alerts from a real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from device_profiles.vocabulary import Condition
from simulators.cohort import CohortConfig, generate_cohort
from simulators.scoring import ANY_RULE, AlertRecord, format_rows, load_alerts, match_alerts, score
from simulators.seed import seed_database
from simulators.series import Episode

T0 = datetime(2026, 10, 1, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)


def hf_episode(patient: str, start_day: int, end_day: int) -> Episode:
    return Episode(patient, Condition.HEART_FAILURE, "decompensation", T0 + start_day * D, T0 + end_day * D)


def test_alert_inside_the_window_matches_and_outside_is_false() -> None:
    eps = [hf_episode("A", 10, 16)]
    alerts = [
        AlertRecord("A", "HF1", T0 + 14 * D),  # inside
        AlertRecord("A", "HF3", T0 + 18 * D),  # within 3 days after the end
        AlertRecord("A", "HF6", T0 + 9 * D + 12 * H),  # within 1 day before the start
        AlertRecord("A", "HF6", T0 + 3 * D),  # long before: false
        AlertRecord("A", "HF1", T0 + 20 * D),  # too late: false
        AlertRecord("B", "HF1", T0 + 14 * D),  # another patient: false
    ]
    m = match_alerts(alerts, eps)
    assert m.episode_of_alert == [0, 0, 0, None, None, None]
    assert m.alerts_of_episode == [[0, 1, 2]]


def test_overlapping_windows_prefer_the_episode_the_alert_is_inside() -> None:
    eps = [
        Episode("A", Condition.DIABETES_T1, "hypoglycaemia", T0, T0 + 2 * H),
        Episode("A", Condition.DIABETES_T1, "hyperglycaemia", T0 + 3 * H, T0 + 8 * H),
    ]
    # 3.5 h: inside the second episode and within 2 h after the first one.
    m = match_alerts([AlertRecord("A", "D7", T0 + 3 * H + 30 * timedelta(minutes=1))], eps)
    assert m.episode_of_alert == [1]


def test_score_sensitivity_lead_time_and_burden() -> None:
    eps = [hf_episode("A", 10, 16), hf_episode("B", 5, 9), hf_episode("C", 20, 25)]
    alerts = [
        AlertRecord("A", "HF1", T0 + 14 * D),  # lead 2 days
        AlertRecord("A", "HF3", T0 + 16 * D),  # lead 0
        AlertRecord("B", "HF1", T0 + 8 * D),  # lead 1 day
        AlertRecord("C", "HF9", T0 + 2 * D, severity="info"),  # false, not staff-reviewed
        AlertRecord("D", "HF5", T0 + 2 * D, severity="high"),  # false, reviewed
        AlertRecord("X", "HF1", T0 + 2 * D),  # patient not in the cohort: ignored
    ]
    conditions = dict.fromkeys("ABCD", (Condition.HEART_FAILURE,))
    conditions["E"] = (Condition.COPD,)
    rows = {(r.condition, r.rule_id): r for r in score(alerts, eps, conditions, days=30.44)}
    assert {r.episode_type for r in rows.values() if r.condition is Condition.HEART_FAILURE} == {"decompensation"}
    hf1 = rows[(Condition.HEART_FAILURE, "HF1")]
    assert (hf1.episodes, hf1.detected) == (3, 2)
    assert hf1.sensitivity == pytest.approx(2 / 3)
    assert hf1.median_lead_h == pytest.approx(36.0)  # median of 48 h and 24 h
    assert hf1.false_per_patient_month == 0
    anyrule = rows[(Condition.HEART_FAILURE, ANY_RULE)]
    assert anyrule.detected == 2
    assert anyrule.alerts == 5
    # 4 HF patients for one month each: 2 false alerts, 4 staff-reviewed alerts.
    assert anyrule.false_per_patient_month == pytest.approx(0.5)
    assert anyrule.reviewed_per_patient_month == pytest.approx(1.0)
    assert rows[(Condition.HEART_FAILURE, "HF3")].median_lead_h == 0
    copd = rows[(Condition.COPD, ANY_RULE)]
    assert copd.episodes == 0
    assert copd.sensitivity is None
    assert copd.episode_type == "-"
    cells = format_rows(list(rows.values()))
    assert cells[0][0] == "condition"
    assert any(c[2] == "HF1" and c[5] == "67%" for c in cells)


def test_sensitivity_is_per_episode_type() -> None:
    eps = [
        Episode("A", Condition.DIABETES_T1, "hypoglycaemia", T0, T0 + 2 * H),
        Episode("A", Condition.DIABETES_T1, "hyperglycaemia", T0 + 20 * H, T0 + 26 * H),
    ]
    alerts = [AlertRecord("A", "D1", T0 + H), AlertRecord("A", "D7", T0 + 21 * H, severity="low")]
    rows = {(r.episode_type, r.rule_id): r for r in score(alerts, eps, {"A": (Condition.DIABETES_T1,)}, days=10)}
    assert rows[("hypoglycaemia", "D1")].sensitivity == 1.0
    assert ("hyperglycaemia", "D1") not in rows  # a rule is listed under the types it finds
    assert rows[("hyperglycaemia", "D7")].sensitivity == 1.0
    assert rows[("hyperglycaemia", ANY_RULE)].detected == 1


def test_load_alerts_from_the_database(database_url: str) -> None:
    cohort = generate_cohort(CohortConfig(2, seed=21, days=5))
    seed_database(database_url, cohort)
    p = cohort.patients[0]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO alert (patient_id, rule_id, event_type, severity, title, opened_at, shown_to_staff_at)"
            " VALUES (%s, 'D1', 'hypoglycaemia', 'medium', 't', %s, %s)",
            (p.patient_id, T0 + H, T0 + H),
        )
    alerts = load_alerts(database_url)
    assert alerts == [AlertRecord(p.pseudonym, "D1", T0 + H, "medium")]
    assert load_alerts(database_url, patients=["nobody"]) == []


def test_ignored_rules_neither_detect_nor_count_as_false() -> None:
    eps = [hf_episode("A", 10, 16)]
    alerts = [AlertRecord("A", "NODATA", T0 + 12 * D), AlertRecord("A", "NODATA", T0 + 2 * D)]
    conditions = {"A": (Condition.HEART_FAILURE,)}
    kept = {r.rule_id: r for r in score(alerts, eps, conditions, days=30)}
    assert kept[ANY_RULE].detected == 1
    dropped = {r.rule_id: r for r in score(alerts, eps, conditions, days=30, ignore_rules=frozenset({"NODATA"}))}
    assert set(dropped) == {ANY_RULE}
    assert dropped[ANY_RULE].detected == 0
    assert dropped[ANY_RULE].false_per_patient_month == 0
