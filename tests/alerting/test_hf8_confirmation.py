"""HF8: one worse answer on one day is the patient's; a second item or a second day reaches staff (issue 12)."""

from __future__ import annotations

from typing import Any

import psycopg

from alerting import events
from alerting.rules import SYMPTOM_HF, WEIGHT
from alerting.service import evaluate_and_store
from device_profiles.vocabulary import Route
from tests.alerting.dbdata import add_observation, make_patient
from tests.alerting.helpers import DAY, HOUR, NOW, cohort, fire, series

HF = cohort("heart_failure")


def test_hf8_value_counts_items_and_days_in_a_row() -> None:
    one = fire("HF8", {SYMPTOM_HF[0]: series([(2 * HOUR, 1.0)])}, HF)
    assert one is not None
    assert (one.severity, one.value) == ("medium", 1.0)
    two_items = fire("HF8", {SYMPTOM_HF[0]: series([(2 * HOUR, 1.0)]), SYMPTOM_HF[1]: series([(2 * HOUR, 1.0)])}, HF)
    assert two_items is not None
    assert two_items.value == 2.0
    two_days = fire("HF8", {SYMPTOM_HF[2]: series([(DAY + 2 * HOUR, 1.0), (2 * HOUR, 1.0)])}, HF)
    assert two_days is not None
    assert (two_days.severity, two_days.value) == ("medium", 2.0)
    # A day in between without a worse answer starts the count again.
    apart = fire(
        "HF8", {SYMPTOM_HF[2]: series([(2 * DAY + 2 * HOUR, 1.0), (DAY + 2 * HOUR, 0.0), (2 * HOUR, 1.0)])}, HF
    )
    assert apart is not None
    assert apart.value == 1.0
    # Any worse answer with a 3-day weight gain stays high, whatever the count.
    gain = {
        SYMPTOM_HF[2]: series([(2 * HOUR, 1.0)]),
        WEIGHT: series(
            [(3 * DAY + 6 * HOUR, 80.0), (2 * DAY + 6 * HOUR, 80.5), (DAY + 6 * HOUR, 81.2), (6 * HOUR, 82.1)]
        ),
    }
    high = fire("HF8", gain, HF)
    assert high is not None
    assert (high.severity, high.value) == ("high", 1.0)


def test_hf8_routing_by_value() -> None:
    assert events.route("HF8", "medium", None, 1.0) is Route.PATIENT
    assert events.route("HF8", "medium", None, 2.0) is Route.STAFF
    assert events.route("HF8", "high", None, 1.0) is Route.STAFF
    assert events.route("HF8", "medium") is Route.STAFF  # no value: as before
    assert events.route("HF8", "medium", {"HF8": "staff"}, 1.0) is Route.STAFF  # the care plan decides
    assert events.route("HF7", "high", None, 0.0) is Route.STAFF  # only HF8 has a value limit


def _staff(db: psycopg.Connection[Any], pid: str) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT event_type, rule_id, severity FROM alert WHERE patient_id = %s AND shown_to_staff_at IS NOT NULL"
        " AND event_type = 'hf_symptoms'",  # no weights here: HF9 has its own card
        (pid,),
    ).fetchall()


def test_one_worse_answer_tells_the_patient_a_second_day_reaches_staff(db: psycopg.Connection[Any]) -> None:
    pid = make_patient(db, ["heart_failure"])
    add_observation(db, pid, "symptoms", "oedema_worse", NOW - DAY - 2 * HOUR, 1.0, unit="1")
    evaluate_and_store(db, [pid], NOW - DAY)
    assert _staff(db, pid) == []
    routes = db.execute("SELECT rule_id, route FROM alert_finding WHERE patient_id = %s", (pid,)).fetchall()
    assert ("HF8", "patient") in routes
    msgs = db.execute(
        "SELECT level, message_sv FROM patient_message WHERE patient_id = %s AND level = %s", (pid, "contact_care")
    ).fetchall()
    assert [m[0] for m in msgs] == ["contact_care"]
    assert msgs[0][1].startswith("Du har svarat att du mår sämre")
    # The next day's form is worse again: now the monitoring team sees it.
    add_observation(db, pid, "symptoms", "oedema_worse", NOW - 2 * HOUR, 1.0, unit="1")
    evaluate_and_store(db, [pid], NOW)
    assert _staff(db, pid) == [("hf_symptoms", "HF8", "medium")]


def test_two_worse_items_on_one_day_reach_staff_at_once(db: psycopg.Connection[Any]) -> None:
    pid = make_patient(db, ["heart_failure"])
    add_observation(db, pid, "symptoms", "oedema_worse", NOW - 2 * HOUR, 1.0, unit="1")
    add_observation(db, pid, "symptoms", "orthopnoea", NOW - 2 * HOUR, 1.0, unit="1")
    evaluate_and_store(db, [pid], NOW)
    assert _staff(db, pid) == [("hf_symptoms", "HF8", "medium")]
