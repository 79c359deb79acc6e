"""A skipped symptom form while the devices keep sending is the patient's, not staff's (issue 12)."""

from __future__ import annotations

import math
from typing import Any

import psycopg
import pytest

from alerting.engine import Finding
from alerting.series import Series
from alerting.service import evaluate_and_store
from alerting.triage import Cause, Classification, gaps_for, route
from device_profiles.vocabulary import MessageLevel
from tests.alerting.dbdata import add_observation, make_patient
from tests.alerting.helpers import DAY, HOUR, NOW, cohort
from tests.alerting.test_triage import bp, messages, setup_kit, triage_alerts

NOT_MEASURED = Classification(Cause.PATIENT_DID_NOT_MEASURE, ("not_measured",))


def test_form_gap_while_measuring_elsewhere_never_reaches_staff() -> None:
    r = route(NOT_MEASURED, "symptoms", 100.0, 54.0, 72.0, other_gap_h=2.0)
    assert (r.staff, r.message_level) == (False, MessageLevel.CONTACT_CARE)  # the patient is still asked
    # Silent in everything: staff at the limit, as before.
    assert route(NOT_MEASURED, "symptoms", 100.0, 54.0, 72.0, other_gap_h=100.0).staff
    assert route(NOT_MEASURED, "symptoms", 100.0, 54.0, 72.0).staff  # no other kind measured
    assert not route(NOT_MEASURED, "symptoms", 100.0, 54.0, 72.0, other_gap_h=71.99).staff
    assert route(NOT_MEASURED, "symptoms", 100.0, 54.0, 72.0, other_gap_h=72.0).staff
    # A device kind's gap is a gap whatever else arrives (a missing weight matters in itself).
    assert route(NOT_MEASURED, "weight", 72.0, 54.0, 72.0, other_gap_h=1.0).staff
    # A gateway outage reaches staff at the limit as before.
    outage = Classification(Cause.GATEWAY_OUTAGE, ("status_stale",))
    assert route(outage, "symptoms", 80.0, 54.0, 72.0, other_gap_h=1.0).staff


def test_gaps_know_the_patients_newest_other_reading() -> None:
    c = cohort("heart_failure", schedule={"symptoms": 1.0, "weight": 1.0})
    data = {
        "weight.weight": Series.build([0], [NOW - 3 * HOUR], [80.0]),
        "symptoms.oedema_worse": Series.build([0], [NOW - 4 * DAY], [0.0]),
    }
    finding = Finding(0, "NODATA", "low", NOW, 96.0, NOW - 4 * DAY)
    (gap,) = gaps_for([finding], data, c, NOW)
    assert gap.kind == "symptoms"
    assert gap.other_last == pytest.approx(NOW - 3 * HOUR)
    (weight_gap,) = gaps_for([Finding(0, "HF9", "low", NOW, 4.0, NOW - 4 * DAY)], {}, c, NOW)
    assert math.isnan(weight_gap.other_last)  # only forms look at the other kinds


def _form(db: psycopg.Connection[Any], pid: str, at: float) -> None:
    add_observation(db, pid, "symptoms", "hypertensive_symptoms", at, 0.0, unit="1")


def test_skipped_forms_with_bp_arriving_stay_with_the_patient(db: psycopg.Connection[Any]) -> None:
    pid = make_patient(db, ["hypertension"], schedule={"blood_pressure": 2, "symptoms": 1})
    setup_kit(db, pid)
    _form(db, pid, NOW - 80 * HOUR)
    bp(db, pid, NOW - 2 * HOUR)
    evaluate_and_store(db, [pid], NOW)
    route_, status, shown, rule_id, evidence = triage_alerts(db, pid)["missing_data"]
    assert (route_, status, shown, rule_id) == ("patient", "open", False, "NODATA")
    assert [g["kind"] for g in evidence["triage"]] == ["symptoms"]
    assert ("contact_care", "symptoms", True) in messages(db, pid, NOW)


def test_skipped_forms_with_nothing_else_either_reach_staff(db: psycopg.Connection[Any]) -> None:
    pid = make_patient(db, ["hypertension"], schedule={"blood_pressure": 2, "symptoms": 1})
    setup_kit(db, pid)
    _form(db, pid, NOW - 80 * HOUR)
    bp(db, pid, NOW - 80 * HOUR)
    evaluate_and_store(db, [pid], NOW)
    route_, status, shown, _, evidence = triage_alerts(db, pid)["missing_data"]
    assert (route_, status, shown) == ("staff", "open", True)
    assert {g["kind"] for g in evidence["triage"]} == {"symptoms", "blood_pressure"}
