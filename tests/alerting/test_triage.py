"""Missing-data triage: the classifier's edges (pure) and the three causes end to end in PostgreSQL."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from alerting.engine import Finding
from alerting.service import evaluate_and_store
from alerting.triage import (
    Cause,
    Classification,
    DeviceState,
    GatewayState,
    TriageSettings,
    classify,
    gaps_for,
    route,
)
from device_profiles.vocabulary import EventType, MessageLevel
from tests.alerting.dbdata import add_observation, make_patient
from tests.alerting.helpers import DAY, HOUR, NOW, cohort

S = TriageSettings()


def bp_device(
    *, seen_ago_h: float = 1.0, battery: float = 80.0, errors: int = 0, before: int | None = None
) -> DeviceState:
    return DeviceState("AA:01", "blood_pressure", NOW - seen_ago_h * HOUR, battery, errors, before)


def gateway(*devices: DeviceState, online: bool = True, status_ago_s: float = 30.0) -> GatewayState:
    return GatewayState("gw-t-1", online, NOW - status_ago_s, devices)


# ---------------------------------------------------------------- classification (pure)


def test_gateway_causes_come_first() -> None:
    assert classify("blood_pressure", NOW, None).reasons == ("no_gateway",)
    offline = classify("blood_pressure", NOW, gateway(bp_device(battery=5), online=False))
    assert offline == Classification(Cause.GATEWAY_OUTAGE, ("gateway_offline",))
    never = GatewayState("gw-t-1", True, math.nan, (bp_device(),))
    assert classify("blood_pressure", NOW, never).cause is Cause.GATEWAY_OUTAGE


def test_status_staleness_threshold_is_exact() -> None:
    fresh = classify("blood_pressure", NOW, gateway(bp_device(), status_ago_s=S.status_stale_after_s))
    assert fresh.cause is Cause.PATIENT_DID_NOT_MEASURE
    stale = classify("blood_pressure", NOW, gateway(bp_device(), status_ago_s=S.status_stale_after_s + 1))
    assert stale == Classification(Cause.GATEWAY_OUTAGE, ("status_stale",))


def test_battery_below_15_percent_is_a_device_problem_15_is_not() -> None:
    assert classify("blood_pressure", NOW, gateway(bp_device(battery=15.0))).cause is Cause.PATIENT_DID_NOT_MEASURE
    low = classify("blood_pressure", NOW, gateway(bp_device(battery=14.0)))
    assert (low.cause, low.reasons) == (Cause.DEVICE_PROBLEM, ("low_battery",))
    unknown = classify("blood_pressure", NOW, gateway(bp_device(battery=math.nan)))
    assert unknown.cause is Cause.PATIENT_DID_NOT_MEASURE


def test_device_seen_window_is_exact() -> None:
    at_edge = classify("blood_pressure", NOW, gateway(bp_device(seen_ago_h=S.device_seen_within_h)))
    assert at_edge.cause is Cause.PATIENT_DID_NOT_MEASURE
    gone = classify("blood_pressure", NOW, gateway(bp_device(seen_ago_h=S.device_seen_within_h + 0.01, battery=5)))
    assert (gone.cause, gone.reasons) == (Cause.DEVICE_PROBLEM, ("device_not_seen", "low_battery"))


def test_no_device_of_the_kind_is_a_device_problem() -> None:
    c = classify("spo2", NOW, gateway(bp_device()))
    assert (c.cause, c.reasons) == (Cause.DEVICE_PROBLEM, ("no_device",))
    # A body-composition scale delivers the weight; a symptom form needs no device.
    scale = DeviceState("AA:02", "body_composition", NOW - HOUR, 90.0)
    assert classify("weight", NOW, gateway(scale)).cause is Cause.PATIENT_DID_NOT_MEASURE
    assert classify("symptoms", NOW, gateway()).cause is Cause.PATIENT_DID_NOT_MEASURE


def test_decode_errors_rising() -> None:
    assert (
        classify("blood_pressure", NOW, gateway(bp_device(errors=3, before=3))).cause is Cause.PATIENT_DID_NOT_MEASURE
    )
    rising = classify("blood_pressure", NOW, gateway(bp_device(errors=4, before=3)))
    assert rising.reasons == ("decode_errors",)
    # First look: errors from a device that is talking to the gateway count.
    assert classify("blood_pressure", NOW, gateway(bp_device(errors=1))).reasons == ("decode_errors",)
    assert classify("blood_pressure", NOW, gateway(bp_device(errors=0))).cause is Cause.PATIENT_DID_NOT_MEASURE


def test_the_newest_seen_device_speaks_for_the_kind() -> None:
    spare = DeviceState("AA:09", "blood_pressure", NOW - 30 * DAY, 2.0)
    assert classify("blood_pressure", NOW, gateway(spare, bp_device())).cause is Cause.PATIENT_DID_NOT_MEASURE


def test_routing_limits_are_exact() -> None:
    patient = Classification(Cause.PATIENT_DID_NOT_MEASURE, ("not_measured",))
    r = route(patient, "weight", 53.99, 54.0, 72.0)
    assert (r.message_level, r.staff, r.technical) == (MessageLevel.REMINDER, False, None)
    assert route(patient, "weight", 54.0, 54.0, 72.0).message_level is MessageLevel.CONTACT_CARE
    assert not route(patient, "weight", 71.99, 54.0, 72.0).staff
    assert route(patient, "weight", 72.0, 54.0, 72.0).staff
    battery = route(Classification(Cause.DEVICE_PROBLEM, ("low_battery",)), "weight", 40.0, 54.0, 72.0)
    assert battery.technical is EventType.DEVICE_PROBLEM
    assert battery.message_sv is not None
    assert "Byt batteri" in battery.message_sv
    decode = route(Classification(Cause.DEVICE_PROBLEM, ("decode_errors",)), "weight", 40.0, 54.0, 72.0)
    assert (decode.technical, decode.message_level) == (EventType.DEVICE_PROBLEM, None)
    offline = route(Classification(Cause.GATEWAY_OUTAGE, ("gateway_offline",)), "weight", 80.0, 54.0, 72.0)
    assert (offline.technical, offline.message_level, offline.staff) == (EventType.GATEWAY_OFFLINE, None, True)


# ---------------------------------------------------------------- end to end (PostgreSQL)


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def setup_kit(
    db: psycopg.Connection[Any],
    pid: str,
    *,
    online: bool = True,
    battery: int = 80,
    seen_at: float = NOW - HOUR,
    gateway_id: str = "gw-test-1",
) -> None:
    status = {
        "schema": 1,
        "gateway_id": gateway_id,
        "state": "online",
        "sent_at": _dt(NOW - 30).isoformat(),
        "version": "1.0",
        "uptime_s": 100.0,
        "outbox_depth": 0,
        "outbox_capacity": 1000,
        "devices": [
            {
                "address": "AA:BB:CC:DD:EE:01",
                "model": "BP-1",
                "kind": "blood_pressure",
                "last_seen_at": _dt(seen_at).isoformat(),
                "battery_pct": battery,
                "decode_errors": 0,
            }
        ],
    }
    db.execute(
        "INSERT INTO gateway (id, online, last_status, last_status_at) VALUES (%s, %s, %s, %s)",
        (gateway_id, online, json.dumps(status), _dt(NOW - 30)),
    )
    db.execute(
        "INSERT INTO gateway_assignment (gateway_id, patient_id, valid) VALUES (%s, %s, tstzrange(%s, NULL))",
        (gateway_id, pid, _dt(NOW - 60 * DAY)),
    )
    db.execute(
        "INSERT INTO device (gateway_id, address, model, kind, battery_pct, first_seen_at, last_seen_at) "
        "VALUES (%s, 'AA:BB:CC:DD:EE:01', 'BP-1', 'blood_pressure', %s, %s, %s)",
        (gateway_id, battery, _dt(NOW - 60 * DAY), _dt(seen_at)),
    )


def bp(db: psycopg.Connection[Any], pid: str, at: float) -> None:
    add_observation(db, pid, "blood_pressure", "systolic", at, 128.0, unit="mm[Hg]")
    add_observation(db, pid, "blood_pressure", "diastolic", at, 80.0, unit="mm[Hg]")


def triage_alerts(db: psycopg.Connection[Any], pid: str) -> dict[str, tuple[Any, ...]]:
    rows = db.execute(
        "SELECT event_type, route, status, shown_to_staff_at IS NOT NULL, rule_id, evidence FROM alert "
        "WHERE patient_id = %s ORDER BY id",
        (pid,),
    ).fetchall()
    return {r[0]: r[1:] for r in rows}


def messages(db: psycopg.Connection[Any], pid: str, at: float) -> list[tuple[str, str, bool]]:
    """(level, kind, still deliverable at ``at``) per queued message, oldest first."""
    return [
        (r[0], r[1], r[2])
        for r in db.execute(
            "SELECT level, kind, expires_at > %s FROM patient_message WHERE patient_id = %s ORDER BY created_at, id",
            (_dt(at), pid),
        )
    ]


@pytest.fixture
def ht_patient(db: psycopg.Connection[Any]) -> str:
    pid = make_patient(db, ["hypertension"], schedule={"blood_pressure": 2})
    bp(db, pid, NOW - 40 * HOUR)  # NODATA info after 36 h
    return pid


def test_patient_did_not_measure_reminder_then_staff_after_the_limit(
    db: psycopg.Connection[Any], ht_patient: str
) -> None:
    pid = ht_patient
    setup_kit(db, pid)
    evaluate_and_store(db, [pid], NOW)
    a = triage_alerts(db, pid)
    assert set(a) == {"missing_data"}
    route_, status, shown, rule_id, evidence = a["missing_data"]
    assert (route_, status, shown, rule_id) == ("patient", "open", False, "NODATA")
    assert evidence["triage"][0]["cause"] == "patient_did_not_measure"
    assert messages(db, pid, NOW) == [("reminder", "blood_pressure", True)]
    # Re-evaluation does not repeat the reminder.
    evaluate_and_store(db, [pid], NOW + 60)
    assert len(messages(db, pid, NOW)) == 1
    # 60 h: contact care, still not staff (limit 72 h, the NODATA low level).
    t = NOW + 20 * HOUR
    db.execute("UPDATE gateway SET last_status_at = %s", (_dt(t - 30),))
    db.execute("UPDATE device SET last_seen_at = %s", (_dt(t - HOUR),))
    evaluate_and_store(db, [pid], t)
    assert triage_alerts(db, pid)["missing_data"][:3] == ("patient", "open", False)
    assert [m[0] for m in messages(db, pid, t)] == ["reminder", "contact_care"]
    # 73 h: the staff queue.
    t = NOW + 33 * HOUR
    db.execute("UPDATE gateway SET last_status_at = %s", (_dt(t - 30),))
    db.execute("UPDATE device SET last_seen_at = %s", (_dt(t - HOUR),))
    evaluate_and_store(db, [pid], t)
    assert triage_alerts(db, pid)["missing_data"][:3] == ("staff", "open", True)
    # The rule itself never opens a per-rule alert.
    assert db.execute("SELECT 1 FROM alert WHERE patient_id = %s AND event_type = 'NODATA'", (pid,)).fetchone() is None


def test_care_plan_staff_limit(db: psycopg.Connection[Any]) -> None:
    pid = make_patient(
        db, ["hypertension"], schedule={"blood_pressure": 2}, thresholds={"NODATA": {"staff_after_h": 24}}
    )
    bp(db, pid, NOW - 40 * HOUR)
    setup_kit(db, pid)
    evaluate_and_store(db, [pid], NOW)
    a = triage_alerts(db, pid)["missing_data"]
    assert a[:3] == ("staff", "open", True)
    assert a[4]["triage"][0]["staff_after_h"] == 24.0


def test_reminder_stops_when_the_measurement_arrives(db: psycopg.Connection[Any], ht_patient: str) -> None:
    pid = ht_patient
    setup_kit(db, pid)
    evaluate_and_store(db, [pid], NOW)
    assert messages(db, pid, NOW) == [("reminder", "blood_pressure", True)]
    bp(db, pid, NOW + 10 * 60)
    t = NOW + 15 * 60
    evaluate_and_store(db, [pid], t)
    a = triage_alerts(db, pid)["missing_data"]
    assert a[1] == "resolved"
    assert db.execute(
        "SELECT resolution_reason FROM alert WHERE patient_id = %s AND event_type = 'missing_data'", (pid,)
    ).fetchone() == ("condition_cleared",)
    assert messages(db, pid, t) == [("reminder", "blood_pressure", False)]  # expired, never to be sent
    assert db.execute(
        "SELECT route, cleared_at IS NOT NULL FROM alert_finding WHERE patient_id = %s AND rule_id = 'NODATA'", (pid,)
    ).fetchone() == ("patient", True)
    evaluate_and_store(db, [pid], t + 60)
    assert len(messages(db, pid, t)) == 1


def test_staff_alert_gets_a_resolution_suggestion_when_data_arrives(db: psycopg.Connection[Any]) -> None:
    pid = make_patient(db, ["hypertension"], schedule={"blood_pressure": 2})
    bp(db, pid, NOW - 80 * HOUR)
    setup_kit(db, pid)
    evaluate_and_store(db, [pid], NOW)
    assert triage_alerts(db, pid)["missing_data"][:3] == ("staff", "open", True)
    bp(db, pid, NOW + 60)
    evaluate_and_store(db, [pid], NOW + 120)
    row = db.execute(
        "SELECT status, resolution_suggested_at IS NOT NULL FROM alert WHERE patient_id = %s", (pid,)
    ).fetchone()
    assert row == ("open", True)  # staff decide


@pytest.mark.parametrize(("battery", "seen_ago_h", "reason"), [(5, 1.0, "low_battery"), (80, 72.0, "device_not_seen")])
def test_device_problem_is_technical_with_a_patient_message(
    db: psycopg.Connection[Any], ht_patient: str, battery: int, seen_ago_h: float, reason: str
) -> None:
    pid = ht_patient
    setup_kit(db, pid, battery=battery, seen_at=NOW - seen_ago_h * HOUR)
    evaluate_and_store(db, [pid], NOW)
    a = triage_alerts(db, pid)
    assert set(a) == {"device_problem"}
    route_, status, shown, _, evidence = a["device_problem"]
    assert (route_, status, shown) == ("technical", "open", False)
    assert evidence["triage"][0]["reasons"] == [reason]
    assert evidence["decode_errors"] == {"AA:BB:CC:DD:EE:01": 0}
    assert messages(db, pid, NOW) == [("reminder", "blood_pressure", True)]
    text = db.execute("SELECT message_sv, gateway_id FROM patient_message WHERE patient_id = %s", (pid,)).fetchone()
    assert text is not None
    assert ("Byt batteri" in text[0]) == (reason == "low_battery")
    assert text[1] == "gw-test-1"
    # The rule's finding is kept for audit with the triage's route, linked to the event.
    finding = db.execute(
        "SELECT f.route, a.event_type FROM alert_finding f JOIN alert a ON a.id = f.alert_id "
        "WHERE f.patient_id = %s AND f.rule_id = 'NODATA' AND f.cleared_at IS NULL",
        (pid,),
    ).fetchone()
    assert finding == ("technical", "device_problem")


def test_gateway_offline_is_technical_and_sends_no_message(db: psycopg.Connection[Any], ht_patient: str) -> None:
    pid = ht_patient
    setup_kit(db, pid, online=False)
    evaluate_and_store(db, [pid], NOW)
    a = triage_alerts(db, pid)
    assert set(a) == {"gateway_offline"}
    assert a["gateway_offline"][:3] == ("technical", "open", False)
    assert a["gateway_offline"][4]["triage"][0]["reasons"] == ["gateway_offline"]
    assert messages(db, pid, NOW) == []
    # Past the limit staff see the gap too; still no message to an offline gateway.
    evaluate_and_store(db, [pid], NOW + 33 * HOUR)
    a = triage_alerts(db, pid)
    assert a["missing_data"][:3] == ("staff", "open", True)
    assert a["gateway_offline"][:3] == ("technical", "open", False)
    assert messages(db, pid, NOW) == []


def test_cgm_data_insufficient_stays_in_the_record(db: psycopg.Connection[Any]) -> None:
    pid = make_patient(db, ["diabetes_t1"], schedule={"glucose_cgm": 288})
    for k in range(40):  # far below 70 % of 14 days at 5 min: D9 fires
        add_observation(db, pid, "glucose_cgm", "glucose_interstitial", NOW - k * HOUR, 6.0)
    setup_kit(db, pid)
    evaluate_and_store(db, [pid], NOW)
    assert db.execute("SELECT 1 FROM alert WHERE patient_id = %s AND rule_id = 'D9'", (pid,)).fetchone() is None
    assert db.execute(
        "SELECT route, severity FROM alert_finding WHERE patient_id = %s AND rule_id = 'D9' AND cleared_at IS NULL",
        (pid,),
    ).fetchone() == ("record", "info")


def test_a_gap_is_counted_from_when_monitoring_began() -> None:
    """The triage's gap length (which decides staff) starts no earlier than enrolment."""
    enrolled_2_days_ago = cohort("hypertension", schedule={"blood_pressure": 2.0}, monitored_since=[NOW - 2 * DAY])
    long_ago = cohort("hypertension", schedule={"blood_pressure": 2.0})
    finding = Finding(0, "NODATA", "info", NOW, 48.0, NOW - 2 * DAY)
    (fresh,) = gaps_for([finding], {}, enrolled_2_days_ago, NOW)
    assert fresh.gap_h == pytest.approx(48.0)  # not the 28-day load window (672 h)
    (old,) = gaps_for([finding], {}, long_ago, NOW)
    assert old.gap_h == pytest.approx(28 * 24.0)
