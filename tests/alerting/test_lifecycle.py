"""The alert lifecycle against a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg

from alerting.lifecycle import housekeeping
from alerting.load import load_cohort, load_dataset
from alerting.service import evaluate_and_store
from tests.alerting.dbdata import (
    STAFF_LOWS,
    add_observation,
    make_patient,
    staff_acknowledges,
    staff_resolves,
    staff_snoozes,
)
from tests.alerting.helpers import DAY, HOUR, MIN, NOW

DEADLINES = {"high": 60.0, "critical": 15.0}


def capillary(db: psycopg.Connection[Any], pid: str, at: float, value: float) -> None:
    add_observation(db, pid, "glucose_capillary", "glucose", at, value)


def alerts(db: psycopg.Connection[Any], pid: str) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT id, rule_id, status, severity, fire_count, latest_value FROM alert WHERE patient_id = %s ORDER BY id",
        (pid,),
    ).fetchall()


def events(db: psycopg.Connection[Any], alert_id: int) -> list[str]:
    return [r[0] for r in db.execute("SELECT event FROM alert_event WHERE alert_id = %s ORDER BY id", (alert_id,))]


def test_condition_lasting_days_gives_one_alert_updated(db: psycopg.Connection[Any]) -> None:
    pid = make_patient(db, ["diabetes_t2"], thresholds=STAFF_LOWS)
    for k in range(4):
        t = NOW + k * 12 * HOUR
        capillary(db, pid, t, 3.5)
        evaluate_and_store(db, [pid], t + MIN)
        evaluate_and_store(db, [pid], t + 2 * MIN)  # the same data again changes nothing
    rows = alerts(db, pid)
    assert len(rows) == 1
    alert_id, rule, status, sev, count, latest = rows[0]
    assert (rule, status, sev, count, latest) == ("D4", "open", "medium", 4, 3.5)
    assert events(db, alert_id) == ["opened", "updated", "updated", "updated"]


def test_severity_escalates_and_reopens_acknowledged(db: psycopg.Connection[Any]) -> None:
    pid = make_patient(db, ["diabetes_t2"], thresholds=STAFF_LOWS)
    capillary(db, pid, NOW, 3.5)
    evaluate_and_store(db, [pid], NOW + MIN)
    alert_id = alerts(db, pid)[0][0]
    staff_acknowledges(db, alert_id, datetime.fromtimestamp(NOW + 2 * MIN, UTC))
    capillary(db, pid, NOW + HOUR, 2.6)
    evaluate_and_store(db, [pid], NOW + HOUR + MIN)
    (_, _, status, sev, count, latest) = alerts(db, pid)[0]
    assert (status, sev, count, latest) == ("open", "high", 2, 2.6)
    assert events(db, alert_id) == ["opened", "acknowledged", "updated", "escalated_severity"]


def test_resolution_suggested_after_clear_then_refire_opens_new(db: psycopg.Connection[Any]) -> None:
    pid = make_patient(db, ["diabetes_t2"], thresholds=STAFF_LOWS)
    capillary(db, pid, NOW, 3.5)
    evaluate_and_store(db, [pid], NOW + MIN)
    alert_id = alerts(db, pid)[0][0]
    # Still inside the rule's lookback: the condition is not clear yet.
    evaluate_and_store(db, [pid], NOW + 12 * HOUR)
    assert "resolution_suggested" not in events(db, alert_id)
    evaluate_and_store(db, [pid], NOW + 25 * HOUR)
    assert events(db, alert_id)[-1] == "resolution_suggested"
    row = db.execute("SELECT resolution_suggested_at FROM alert WHERE id = %s", (alert_id,)).fetchone()
    assert row
    assert row[0] is not None
    staff_resolves(db, alert_id, "no_action_needed", datetime.fromtimestamp(NOW + 26 * HOUR, UTC))
    # Re-evaluating old data does not reopen; a new low after the resolution opens a new alert.
    evaluate_and_store(db, [pid], NOW + 26 * HOUR + MIN)
    assert len(alerts(db, pid)) == 1
    capillary(db, pid, NOW + 27 * HOUR, 3.6)
    evaluate_and_store(db, [pid], NOW + 27 * HOUR + MIN)
    rows = alerts(db, pid)
    assert [r[2] for r in rows] == ["resolved", "open"]


def test_snooze_suppresses_until_it_ends(db: psycopg.Connection[Any]) -> None:
    pid = make_patient(db, ["diabetes_t2"], thresholds=STAFF_LOWS)
    capillary(db, pid, NOW, 3.5)
    evaluate_and_store(db, [pid], NOW + MIN)
    alert_id = alerts(db, pid)[0][0]
    until = datetime.fromtimestamp(NOW + 2 * HOUR, UTC)
    staff_snoozes(db, alert_id, until, datetime.fromtimestamp(NOW + 2 * MIN, UTC))
    capillary(db, pid, NOW + HOUR, 3.4)
    evaluate_and_store(db, [pid], NOW + HOUR + MIN)
    housekeeping(db, NOW + HOUR + 2 * MIN, DEADLINES)
    assert alerts(db, pid)[0][2:5] == ("snoozed", "medium", 2)
    housekeeping(db, NOW + 2 * HOUR + MIN, DEADLINES)
    assert alerts(db, pid)[0][2] == "open"
    assert events(db, alert_id)[-1] == "reopened"


def test_unacknowledged_high_alert_escalates_on_deadline(db: psycopg.Connection[Any]) -> None:
    pid = make_patient(db, ["diabetes_t2"], thresholds=STAFF_LOWS)
    other = make_patient(db, ["diabetes_t2"], thresholds=STAFF_LOWS)
    for p in (pid, other):
        capillary(db, p, NOW, 2.5)
    evaluate_and_store(db, [pid, other], NOW + MIN)
    staff_acknowledges(db, alerts(db, other)[0][0], datetime.fromtimestamp(NOW + 2 * MIN, UTC))
    assert housekeeping(db, NOW + MIN + 59 * MIN, DEADLINES).escalated == 0
    assert housekeeping(db, NOW + MIN + 60 * MIN, DEADLINES).escalated == 1
    assert housekeeping(db, NOW + 3 * HOUR, DEADLINES).escalated == 0  # once
    row = db.execute(
        "SELECT escalation_level, escalated_at IS NOT NULL FROM alert WHERE patient_id = %s", (pid,)
    ).fetchone()
    assert row == (1, True)
    details = db.execute(
        "SELECT e.details FROM alert_event e JOIN alert a ON a.id = e.alert_id "
        "WHERE a.patient_id = %s AND e.event = 'escalated'",
        (pid,),
    ).fetchone()
    assert details == ({"level": 1, "by": "deadline", "deadline_min": 60.0},)
    assert db.execute("SELECT escalation_level FROM alert WHERE patient_id = %s", (other,)).fetchone() == (0,)


def test_loader_drops_rejected_and_keeps_censored(db: psycopg.Connection[Any]) -> None:
    pid = make_patient(
        db, ["diabetes_t1"], thresholds={**STAFF_LOWS, "D1": {"min_duration_min": 10}}, schedule={"glucose_cgm": 288}
    )
    other = make_patient(db, ["heart_failure"])
    for k in range(3):
        add_observation(db, pid, "glucose_cgm", "glucose_interstitial", NOW - (10 - 5 * k) * MIN, None, censored="low")
    add_observation(db, pid, "glucose_capillary", "glucose", NOW - HOUR, 1.0, status="rejected")
    add_observation(db, pid, "glucose_capillary", "glucose", NOW - 30 * DAY, 2.0)  # outside the window
    add_observation(db, other, "weight", "weight", NOW - HOUR, 81.0, unit="kg")
    cohort = load_cohort(db)
    assert cohort.n == 2
    i = cohort.patient_ids.index(pid)
    data = load_dataset(db, cohort, NOW)
    cg = data["glucose_cgm.glucose_interstitial"]
    assert cg.v.tolist() == [float("-inf")] * 3
    assert set(cg.pat.tolist()) == {i}
    assert "glucose_capillary.glucose" not in data
    assert cohort.param("D1", "min_duration_min", 15)[0][i] == 10
    assert bool(cohort.expects("glucose_cgm")[i])
    n, _ = evaluate_and_store(db, None, NOW)
    rules = {r[1] for r in alerts(db, pid)}
    assert "D1" in rules
    assert "D4" not in rules
    assert n >= 1
    ev = db.execute("SELECT evidence FROM alert WHERE patient_id = %s AND rule_id = 'D1'", (pid,)).fetchone()
    assert ev
    assert ev[0]["thresholds"]["min_duration_min"] == {"value": 10.0, "source": "care_plan"}
    assert [r["value"] for r in ev[0]["readings"]] == ["LOW", "LOW", "LOW"]
