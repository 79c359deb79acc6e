"""The safety net: life-threatening values raise alerts whatever the patient is enrolled for."""

from __future__ import annotations

from alerting.rules import CGM, DIASTOLIC, PEF, SPO2, SYSTOLIC
from alerting.series import Series
from tests.alerting.helpers import MIN, cgm, cohort, series, severity


def bp(sys_mmhg: float, dia_mmhg: float) -> dict[str, Series]:
    # A duplicate measurement two minutes apart, as patients are taught.
    return {
        SYSTOLIC: series([(12 * MIN, sys_mmhg), (10 * MIN, sys_mmhg - 2)]),
        DIASTOLIC: series([(12 * MIN, dia_mmhg), (10 * MIN, dia_mmhg - 2)]),
    }


def test_very_high_bp_from_an_asthma_patient_is_a_bp_crisis() -> None:
    assert severity("H3", bp(190, 114), cohort("asthma")) == "high"
    # Only the safety-net level: the lower hypertension rules stay with hypertension patients.
    assert severity("H3", bp(170, 100), cohort("asthma")) is None
    assert severity("H4", bp(170, 104), cohort("asthma")) is None


def test_low_spo2_reaches_anyone_but_copd_patients_are_judged_by_c1() -> None:
    low = {SPO2: series([(10 * MIN, 90.0), (6 * MIN, 89.0)])}
    assert severity("HF7", low, cohort("hypertension")) == "high"
    assert severity("HF7", low, cohort("copd")) is None  # 88–92 % is their everyday
    very_low = {SPO2: series([(10 * MIN, 84.0), (6 * MIN, 83.0)])}
    assert severity("C1", very_low, cohort("hypertension")) == "critical"
    # C1's lower levels are for COPD patients only.
    assert severity("C1", low, cohort("hypertension")) is None


def test_level_2_hypoglycaemia_on_cgm_without_a_diabetes_care_plan() -> None:
    data = {CGM: cgm([5.0, 4.0, 2.9, 2.8, 2.8, 2.7, 2.8])}
    assert severity("D2", data, cohort("heart_failure")) == "high"
    assert severity("D1", data, cohort("heart_failure")) is None


def test_red_zone_pef_for_anyone_with_a_personal_best() -> None:
    blows = {PEF: series([(12 * MIN, 210.0), (11 * MIN, 220.0), (10 * MIN, 200.0)])}
    assert severity("A3", blows, cohort("copd", personal_best_pef=500.0)) == "critical"
    assert severity("A2", blows, cohort("copd", personal_best_pef=500.0)) is None
    assert severity("A3", blows, cohort("copd")) is None  # no personal best: no zone
