"""Clinical events and routing (alerting/events.py) against a real PostgreSQL."""

from __future__ import annotations

from typing import Any

import prometheus_client
import psycopg

from alerting import events
from alerting.rules import REGISTRY
from alerting.service import evaluate_and_store
from device_profiles.vocabulary import EventType, Route
from tests.alerting.dbdata import STAFF_LOWS, add_observation, make_patient, staff_acknowledges
from tests.alerting.helpers import HOUR, MIN, NOW


def cgm(db: psycopg.Connection[Any], pid: str, start: float, values: list[float]) -> None:
    for k, v in enumerate(values):
        add_observation(db, pid, "glucose_cgm", "glucose_interstitial", start + k * 5 * MIN, v)


def staff_alerts(db: psycopg.Connection[Any], pid: str) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT event_type, rule_id, severity, route, title, evidence FROM alert "
        "WHERE patient_id = %s AND shown_to_staff_at IS NOT NULL ORDER BY id",
        (pid,),
    ).fetchall()


def test_one_hypoglycaemia_is_one_alert_with_every_rules_evidence(db: psycopg.Connection[Any]) -> None:
    # Type 2: each level 2 low reaches staff (type 1's are the patient's, the test below).
    pid = make_patient(db, ["diabetes_t2"])
    # 40 minutes below 3.0 (D1 and D2), confirmed by a capillary 2.8 (D4 high).
    cgm(db, pid, NOW - 2 * HOUR, [6.0, 5.0, 4.4])
    cgm(db, pid, NOW - 45 * MIN, [2.9, 2.8, 2.7, 2.7, 2.8, 2.8, 2.9, 2.9, 2.9])
    add_observation(db, pid, "glucose_capillary", "glucose", NOW - 20 * MIN, 2.8)
    before = prometheus_client.REGISTRY.get_sample_value(
        "egenmon_alerting_staff_alerts_total", {"event_type": "hypoglycaemia"}
    )
    evaluate_and_store(db, [pid], NOW)
    rows = staff_alerts(db, pid)
    assert len(rows) == 1
    after = prometheus_client.REGISTRY.get_sample_value(
        "egenmon_alerting_staff_alerts_total", {"event_type": "hypoglycaemia"}
    )
    assert (after or 0) - (before or 0) == 1  # one card counted, not one per rule
    event_type, leading, severity, route, title, evidence = rows[0]
    assert (event_type, severity, route, title) == ("hypoglycaemia", "high", "staff", "Lågt blodsocker")
    assert leading in {"D2", "D4"}  # the most severe rules, then the newest
    assert {r["rule"] for r in evidence["rules"]} >= {"D1", "D2", "D4"}
    assert evidence["event_type"] == "hypoglycaemia"
    assert evidence["thresholds"]  # the leading rule's own evidence stays at the top level
    # Every rule's finding is kept for audit, each pointing at the one event.
    found = db.execute(
        "SELECT rule_id, route, alert_id FROM alert_finding WHERE patient_id = %s ORDER BY rule_id", (pid,)
    ).fetchall()
    alert_id = db.execute("SELECT id FROM alert WHERE patient_id = %s", (pid,)).fetchone()
    assert alert_id is not None
    assert {r[0] for r in found} >= {"D1", "D2", "D4"}
    assert {r[2] for r in found if r[1] == "staff"} == {alert_id[0]}
    # Re-evaluating the same data changes nothing: still one event, one finding per rule.
    evaluate_and_store(db, [pid], NOW + MIN)
    assert len(staff_alerts(db, pid)) == 1
    again = db.execute("SELECT count(*) FROM alert_finding WHERE patient_id = %s", (pid,)).fetchone()
    assert again == (len(found),)


def _level_2_low(db: psycopg.Connection[Any], pid: str, end: float) -> None:
    cgm(db, pid, end - 60 * MIN, [6.0, 5.0, 4.4, 2.9, 2.8, 2.7, 2.7, 2.8, 2.9, 4.5, 5.5, 6.0])


def test_a_type_1_level_2_low_is_the_patients_and_the_third_in_a_week_reaches_staff(
    db: psycopg.Connection[Any],
) -> None:
    pid = make_patient(db, ["diabetes_t1"])
    for days_ago in (5, 2):
        _level_2_low(db, pid, NOW - days_ago * 24 * HOUR)
        evaluate_and_store(db, [pid], NOW - days_ago * 24 * HOUR)
        evaluate_and_store(db, [pid], NOW - days_ago * 24 * HOUR + 26 * HOUR)  # out of the lookback: cleared
    # Two level 2 lows: the patient was told to treat each, staff have seen nothing.
    assert staff_alerts(db, pid) == []
    routes = dict(db.execute("SELECT rule_id, route FROM alert_finding WHERE patient_id = %s", (pid,)).fetchall())
    assert routes.get("D2") == "patient"
    texts = [r[0] for r in db.execute("SELECT message_sv FROM patient_message WHERE patient_id = %s", (pid,))]
    assert sum("mycket lågt" in t for t in texts) == 2
    # The third within 7 days is a pattern that needs a change of treatment: one staff card.
    _level_2_low(db, pid, NOW)
    evaluate_and_store(db, [pid], NOW)
    rows = staff_alerts(db, pid)
    assert [(r[0], r[1], r[2]) for r in rows] == [("hypoglycaemia", "D11", "high")]
    evidence = rows[0][5]
    assert evidence["value"] == 3
    assert {r["rule"] for r in evidence["rules"]} >= {"D11", "D2"}  # the low itself joins as evidence
    # A care plan can send every level 2 low of this patient to staff again.
    other = make_patient(db, ["diabetes_t1"], thresholds={"routing": {"D2": "staff"}})
    _level_2_low(db, other, NOW)
    evaluate_and_store(db, [other], NOW)
    assert [(r[0], r[1]) for r in staff_alerts(db, other)] == [("hypoglycaemia", "D2")]


def test_hours_above_13_9_are_the_patients_until_the_corrections_fail(db: psycopg.Connection[Any]) -> None:
    pid = make_patient(db, ["diabetes_t1"])
    cgm(db, pid, NOW - 3 * HOUR, [15.5] * 37)  # 3 h above 13.9: D7 medium
    evaluate_and_store(db, [pid], NOW)
    assert staff_alerts(db, pid) == []
    texts = [r[0] for r in db.execute("SELECT message_sv FROM patient_message WHERE patient_id = %s", (pid,))]
    assert any("ketoner" in t for t in texts)
    cgm(db, pid, NOW + 5 * MIN, [15.5] * 37)  # 6 h: D7 high, staff
    evaluate_and_store(db, [pid], NOW + 3 * HOUR + 5 * MIN)
    assert [(r[0], r[1], r[2]) for r in staff_alerts(db, pid)] == [("hyperglycaemia", "D7", "high")]


def test_different_events_stay_apart(db: psycopg.Connection[Any]) -> None:
    # No waiting for a repeat BP here (test_confirmation.py covers it).
    pid = make_patient(db, ["diabetes_t2", "hypertension"], thresholds={"confirmation": {"within_min": 0}})
    add_observation(
        db, pid, "glucose_capillary", "glucose", NOW - 30 * MIN, 2.8
    )  # level 2: staff (a level 1 capillary low is the patient's)
    for k, (sys_mmhg, dia_mmhg) in enumerate([(186, 114), (184, 112)]):
        t = NOW - 20 * MIN + k * 2 * MIN
        add_observation(db, pid, "blood_pressure", "systolic", t, sys_mmhg, unit="mm[Hg]")
        add_observation(db, pid, "blood_pressure", "diastolic", t, dia_mmhg, unit="mm[Hg]")
    evaluate_and_store(db, [pid], NOW)
    assert sorted(r[0] for r in staff_alerts(db, pid)) == ["bp_crisis", "hypoglycaemia"]


def test_forecast_and_fast_fall_go_to_the_patient_not_the_queue(db: psycopg.Connection[Any]) -> None:
    pid = make_patient(db, ["diabetes_t1"])
    # A steep fall that stays above 3.9: D5 (forecast) and D6 (rate) fire, no low yet.
    cgm(db, pid, NOW - 30 * MIN, [10.0, 9.5, 8.6, 7.6, 6.6, 5.6, 4.6])
    evaluate_and_store(db, [pid], NOW)
    routes = dict(db.execute("SELECT rule_id, route FROM alert_finding WHERE patient_id = %s", (pid,)).fetchall())
    assert routes.get("D5") == "patient"
    assert routes.get("D6") == "patient"
    assert staff_alerts(db, pid) == []
    msgs = db.execute("SELECT level, kind FROM patient_message WHERE patient_id = %s", (pid,)).fetchall()
    assert ("measure_again", "glucose_cgm") in msgs
    # Re-evaluating the same fall does not repeat the message.
    evaluate_and_store(db, [pid], NOW + MIN)
    assert db.execute("SELECT count(*) FROM patient_message WHERE patient_id = %s", (pid,)).fetchone() == (len(msgs),)


def test_critical_reaches_staff_and_the_patient(db: psycopg.Connection[Any]) -> None:
    pid = make_patient(db, ["copd"])
    for k, v in enumerate([84.0, 83.0]):  # confirmed < 85 %: C1 critical
        add_observation(db, pid, "spo2", "spo2", NOW - 10 * MIN + k * 3 * MIN, v, unit="%")
    evaluate_and_store(db, [pid], NOW)
    rows = staff_alerts(db, pid)
    assert [(r[0], r[2]) for r in rows] == [("copd_exacerbation", "critical")]
    msgs = db.execute("SELECT level, message_sv FROM patient_message WHERE patient_id = %s", (pid,)).fetchall()
    assert len(msgs) == 1
    assert msgs[0][0] == "call_1177_or_112"
    assert "1177" in msgs[0][1]
    assert "112" in msgs[0][1]


def test_care_plan_can_route_a_rule_to_staff(db: psycopg.Connection[Any]) -> None:
    pid = make_patient(db, ["diabetes_t1"], thresholds={"routing": {"D6": "staff"}})  # type: ignore[dict-item]
    cgm(db, pid, NOW - 30 * MIN, [10.0, 9.5, 8.6, 7.6, 6.6, 5.6, 4.6])
    evaluate_and_store(db, [pid], NOW)
    assert [(r[0], r[1]) for r in staff_alerts(db, pid)] == [("hypoglycaemia", "D6")]


def test_routing_table() -> None:
    assert events.route("D9", "info") is Route.RECORD
    assert events.route("H6", "info") is Route.RECORD
    assert events.route("NODATA", "info") is Route.PATIENT
    assert events.route("NODATA", "low") is Route.STAFF
    assert events.route("D6", "medium") is Route.PATIENT
    # In type 1, lows are the patient's to treat (level 1 and level 2); in type 2 staff see level 2
    # and any low a finger-prick confirms.
    t1, t2 = ("diabetes_t1",), ("diabetes_t2",)
    assert events.route("D1", "medium", conditions=t1) is Route.PATIENT
    assert events.route("D4", "medium", conditions=t1) is Route.PATIENT
    assert events.route("D1", "medium", conditions=t2) is Route.PATIENT  # a CGM dip: the patient's in both
    assert events.route("D4", "medium", conditions=t2) is Route.STAFF
    assert events.route("D4", "high", conditions=t2) is Route.STAFF
    assert events.route("D2", "high") is Route.STAFF  # the safety net: CGM without a diabetes care plan
    assert events.route("D3", "high", conditions=t1) is Route.STAFF  # a low that lasts
    assert events.route("D7", "low") is Route.PATIENT
    # Hours above 13.9 are the patient's sick-day plan; six hours is staff's.
    assert events.route("D7", "medium") is Route.PATIENT
    assert events.route("D7", "high") is Route.STAFF
    # A level 2 low is the patient's in type 1 only; the pattern (D11) is staff's.
    assert events.route("D2", "high", conditions=("diabetes_t1",)) is Route.PATIENT
    assert events.route("D4", "high", conditions=("diabetes_t1", "hypertension")) is Route.PATIENT
    assert events.route("D2", "high", conditions=("diabetes_t2",)) is Route.STAFF
    assert events.route("D2", "high", {"D2": "staff"}, conditions=("diabetes_t1",)) is Route.STAFF
    assert events.route("D11", "high", conditions=("diabetes_t1",)) is Route.STAFF
    assert events.route("D1", "medium", {"D1": "staff"}, conditions=t1) is Route.STAFF
    # Critical always reaches staff, whatever a care plan says.
    assert events.route("A3", "critical", {"A3": "record"}) is Route.STAFF
    assert events.event_type("NEWS2", ("copd",)) is EventType.COPD_EXACERBATION
    assert events.event_type("NEWS2", ("heart_failure",)) is EventType.DETERIORATION
    # Every registered rule belongs to an event.
    assert set(REGISTRY) <= set(events.EVENT_OF_RULE)


def test_event_waits_for_its_slowest_rule_before_suggesting_resolution(db: psycopg.Connection[Any]) -> None:
    pid = make_patient(db, ["diabetes_t2"], thresholds=STAFF_LOWS)
    add_observation(db, pid, "glucose_capillary", "glucose", NOW, 3.5)  # D4 (hysteresis 4 h)
    evaluate_and_store(db, [pid], NOW + MIN)
    evaluate_and_store(db, [pid], NOW + 25 * HOUR)  # out of D4's lookback
    row = db.execute("SELECT resolution_suggested_at FROM alert WHERE patient_id = %s", (pid,)).fetchone()
    assert row is not None
    assert row[0] is not None
    assert events.hysteresis_s(EventType.HYPOGLYCAEMIA) == 4 * HOUR


def test_a_new_episode_after_an_acknowledged_one_is_a_new_alert(db: psycopg.Connection[Any]) -> None:
    pid = make_patient(db, ["diabetes_t2"], thresholds=STAFF_LOWS)
    add_observation(db, pid, "glucose_capillary", "glucose", NOW, 3.5)
    evaluate_and_store(db, [pid], NOW + MIN)
    (first,) = db.execute("SELECT id FROM alert WHERE patient_id = %s", (pid,)).fetchall()
    # While nobody has looked, a second low the same day just updates the card.
    add_observation(db, pid, "glucose_capillary", "glucose", NOW + 6 * HOUR, 3.4)
    evaluate_and_store(db, [pid], NOW + 6 * HOUR + MIN)
    assert db.execute("SELECT count(*) FROM alert WHERE patient_id = %s", (pid,)).fetchone() == (1,)
    staff_acknowledges(db, first[0])
    # After staff dealt with it, a low well past the event's hysteresis is a new alert.
    add_observation(db, pid, "glucose_capillary", "glucose", NOW + 12 * HOUR, 3.6)
    evaluate_and_store(db, [pid], NOW + 12 * HOUR + MIN)
    rows = db.execute(
        "SELECT id, status, resolution_reason FROM alert WHERE patient_id = %s ORDER BY id", (pid,)
    ).fetchall()
    assert [(r[1], r[2]) for r in rows] == [("resolved", "condition_cleared"), ("open", None)]
    # A repeat within the hysteresis of the last low stays on the acknowledged card.
    add_observation(db, pid, "glucose_capillary", "glucose", NOW + 13 * HOUR, 3.7)
    staff_acknowledges(db, rows[1][0])
    evaluate_and_store(db, [pid], NOW + 13 * HOUR + MIN)
    assert db.execute("SELECT count(*) FROM alert WHERE patient_id = %s", (pid,)).fetchone() == (2,)
