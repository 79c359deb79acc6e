"""Confirmation before staff see a spot value: measure again, then open or close (real PostgreSQL)."""

from __future__ import annotations

from typing import Any

import psycopg

from alerting.lifecycle import housekeeping
from alerting.service import evaluate_and_store
from tests.alerting.dbdata import add_observation, make_patient
from tests.alerting.helpers import MIN, NOW


def bp(db: psycopg.Connection[Any], pid: str, at: float, systolic: float, diastolic: float) -> None:
    add_observation(db, pid, "blood_pressure", "systolic", at, systolic, unit="mm[Hg]")
    add_observation(db, pid, "blood_pressure", "diastolic", at, diastolic, unit="mm[Hg]")


def alert(db: psycopg.Connection[Any], pid: str) -> tuple[Any, ...]:
    row = db.execute(
        "SELECT id, status, shown_to_staff_at IS NOT NULL, confirm_by, resolution_reason, severity, event_type "
        "FROM alert WHERE patient_id = %s ORDER BY id DESC LIMIT 1",
        (pid,),
    ).fetchone()
    assert row is not None
    return tuple(row)


def timeline(db: psycopg.Connection[Any], alert_id: int) -> list[tuple[str, dict[str, Any]]]:
    return [
        (r[0], r[1])
        for r in db.execute("SELECT event, details FROM alert_event WHERE alert_id = %s ORDER BY id", (alert_id,))
    ]


def messages(db: psycopg.Connection[Any], pid: str) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT level, kind, message_sv, alert_id, expires_at FROM patient_message WHERE patient_id = %s ORDER BY id",
        (pid,),
    ).fetchall()


def test_a_high_bp_waits_for_the_repeat_and_asks_the_patient(db: psycopg.Connection[Any]) -> None:
    pid = make_patient(db, ["hypertension"])
    bp(db, pid, NOW - 1 * MIN, 186, 114)
    evaluate_and_store(db, [pid], NOW)
    alert_id, status, shown, confirm_by, _, severity, event = alert(db, pid)
    assert (status, shown, severity, event) == ("awaiting_confirmation", False, "high", "bp_crisis")
    assert confirm_by.timestamp() == NOW + 15 * MIN  # the default window
    assert [e for e, _ in timeline(db, alert_id)] == ["opened", "confirmation_requested"]
    (msg,) = messages(db, pid)
    assert msg[0] == "measure_again"
    assert msg[1] == "blood_pressure"
    assert "mät igen" in msg[2]
    assert msg[3] == alert_id
    assert msg[4] == confirm_by
    # Nothing for staff yet: the queue reads shown_to_staff_at.
    assert db.execute("SELECT count(*) FROM alert WHERE shown_to_staff_at IS NOT NULL").fetchone() == (0,)
    # Re-evaluating while waiting changes nothing and asks only once.
    evaluate_and_store(db, [pid], NOW + 2 * MIN)
    assert alert(db, pid)[1] == "awaiting_confirmation"
    assert len(messages(db, pid)) == 1


def test_a_repeat_that_is_still_high_opens_the_alert(db: psycopg.Connection[Any]) -> None:
    pid = make_patient(db, ["hypertension"])
    bp(db, pid, NOW - 1 * MIN, 186, 114)
    evaluate_and_store(db, [pid], NOW)
    bp(db, pid, NOW + 6 * MIN, 184, 112)  # measured again after resting
    evaluate_and_store(db, [pid], NOW + 6.5 * MIN)
    alert_id, status, shown, confirm_by, _, _, _ = alert(db, pid)
    assert (status, shown, confirm_by) == ("open", True, None)
    events = timeline(db, alert_id)
    assert [e for e, _ in events][:3] == ["opened", "confirmation_requested", "confirmed"]
    assert events[2][1]["by"] == "repeat"


def test_a_normal_repeat_closes_it_without_reaching_staff(db: psycopg.Connection[Any]) -> None:
    pid = make_patient(db, ["hypertension"])
    bp(db, pid, NOW - 1 * MIN, 186, 114)
    evaluate_and_store(db, [pid], NOW)
    bp(db, pid, NOW + 6 * MIN, 132, 84)
    evaluate_and_store(db, [pid], NOW + 6.5 * MIN)
    alert_id, status, shown, _, reason, _, _ = alert(db, pid)
    assert (status, shown, reason) == ("resolved", False, "not_confirmed")
    assert [e for e, _ in timeline(db, alert_id)][-1] == "not_confirmed"
    # The same occurrence never comes back; a later evaluation opens nothing new.
    evaluate_and_store(db, [pid], NOW + 30 * MIN)
    assert db.execute("SELECT count(*) FROM alert WHERE patient_id = %s", (pid,)).fetchone() == (1,)


def test_no_repeat_opens_it_when_the_window_ends(db: psycopg.Connection[Any]) -> None:
    pid = make_patient(db, ["hypertension"])
    bp(db, pid, NOW - 1 * MIN, 186, 114)
    evaluate_and_store(db, [pid], NOW)
    evaluate_and_store(db, [pid], NOW + 10 * MIN)
    assert alert(db, pid)[1] == "awaiting_confirmation"
    evaluate_and_store(db, [pid], NOW + 18 * MIN)  # 15 min window + 2 min grace passed
    alert_id, status, shown, _, _, _, _ = alert(db, pid)
    assert (status, shown) == ("open", True)
    assert timeline(db, alert_id)[-1] == ("confirmed", {"by": "no repeat"})


def test_housekeeping_opens_a_waiting_alert_nobody_evaluated(db: psycopg.Connection[Any]) -> None:
    pid = make_patient(db, ["hypertension"])
    bp(db, pid, NOW - 1 * MIN, 186, 114)
    evaluate_and_store(db, [pid], NOW)
    housekeeping(db, NOW + 10 * MIN, {})
    assert alert(db, pid)[1] == "awaiting_confirmation"
    stats = housekeeping(db, NOW + 18 * MIN, {})
    assert stats.confirmed == 1
    assert alert(db, pid)[1:3] == ("open", True)


def test_a_repeat_already_taken_is_judged_at_once(db: psycopg.Connection[Any]) -> None:
    pid = make_patient(db, ["hypertension"])
    other = make_patient(db, ["hypertension"])
    for p, (s, d) in ((pid, (183, 111)), (other, (128, 80))):
        bp(db, p, NOW - 30 * MIN, 188, 115)
        bp(db, p, NOW - 12 * MIN, s, d)  # a second session before the first evaluation saw the first
    evaluate_and_store(db, [pid, other], NOW)
    assert alert(db, pid)[1:3] == ("open", True)
    assert alert(db, other)[1:5] == ("resolved", False, None, "not_confirmed")
    assert messages(db, pid) == []
    assert messages(db, other) == []


def test_critical_and_care_plan_choices_skip_confirmation(db: psycopg.Connection[Any]) -> None:
    critical = make_patient(db, ["hypertension"])
    bp(db, critical, NOW - 1 * MIN, 190, 118)
    add_observation(db, critical, "symptoms", "hypertensive_symptoms", NOW - 1 * MIN, 1.0, unit="1")
    off = make_patient(db, ["hypertension"], thresholds={"confirmation": {"within_min": 0}})
    not_h3 = make_patient(db, ["hypertension"], thresholds={"confirmation": {"H3": False}})  # type: ignore[dict-item]
    longer = make_patient(db, ["hypertension"], thresholds={"confirmation": {"within_min": 30}})
    for p in (off, not_h3, longer):
        bp(db, p, NOW - 1 * MIN, 186, 114)
    evaluate_and_store(db, [critical, off, not_h3, longer], NOW)
    assert alert(db, critical)[1:3] == ("open", True)
    assert alert(db, critical)[5] == "critical"
    assert any(m[0] == "call_1177_or_112" for m in messages(db, critical))
    assert alert(db, off)[1:3] == ("open", True)
    assert alert(db, not_h3)[1:3] == ("open", True)
    assert alert(db, longer)[1] == "awaiting_confirmation"
    assert alert(db, longer)[3].timestamp() == NOW + 30 * MIN


def test_a_stale_spot_value_goes_straight_to_staff(db: psycopg.Connection[Any]) -> None:
    pid = make_patient(db, ["hypertension"])
    bp(db, pid, NOW - 3 * 3600, 186, 114)  # uploaded late: asking to measure again is pointless
    evaluate_and_store(db, [pid], NOW)
    assert alert(db, pid)[1:3] == ("open", True)
