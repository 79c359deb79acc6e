"""The monthly summary as one FHIR R4 ``DiagnosticReport`` for the patient record.

One contained ``Observation`` per measured value (systolic, weight, …): ``valueQuantity`` the
month's mean (UCUM), components minimum, maximum and count coded with HL7's
observation-statistics code system, and the trend against the previous month; plus one per
kind with measurements done and planned, and the CGM time in range and weight change where
they apply. ``effectivePeriod`` is the month (Europe/Stockholm). Validated with
fhir.resources' R4B models (R4B shares R4's DiagnosticReport and Observation).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from pydantic import ValidationError

from clinic_api.patient_letter import MonthlySummary
from device_profiles.vocabulary import COMPONENTS

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
STATISTIC = "http://terminology.hl7.org/CodeSystem/observation-statistics"
LOCAL = "urn:egenmon:component"
SUMMARY = "urn:egenmon:monthly-summary"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def _quantity(value: float, unit: str, decimals: int = 2) -> dict[str, Any]:
    return {"value": round(value, decimals), "unit": unit, "system": UCUM, "code": unit}


def _statistic(code: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"code": {"coding": [{"system": STATISTIC, "code": code}]}, **value}


def _local(code: str, text: str) -> dict[str, Any]:
    return {"coding": [{"system": SUMMARY, "code": code}], "text": text}


def summary_report(s: MonthlySummary, *, issued: dt.datetime, complete: bool) -> dict[str, Any]:
    """The validated report as JSON. ``complete``: the month has ended (status final, else partial)."""
    patient_ref = f"Patient/{s.patient_id}"
    period = {"start": s.month.start.isoformat(), "end": s.month.end.isoformat()}
    status = "final" if complete else "preliminary"
    observations: list[dict[str, Any]] = []

    def add(obs_id: str, code: dict[str, Any], **fields: Any) -> None:
        observations.append(
            {
                "resourceType": "Observation",
                "id": obs_id,
                "status": status,
                "category": [{"coding": [{"system": CATEGORY, "code": "vital-signs"}]}],
                "code": code,
                "subject": {"reference": patient_ref},
                "effectivePeriod": period,
                **fields,
            }
        )

    for k in s.kinds:
        done = [_statistic("count", {"valueInteger": k.readings})]
        if k.planned is not None:
            done.append({"code": _local("planned", "planerade mätningar"), "valueInteger": k.planned})
        add(
            f"{k.kind}-measurements".replace("_", "-"),
            _local(f"measurements-{k.kind}", f"{k.title}: antal mätningar"),
            valueInteger=k.readings,
            component=done,
        )
        for c in k.components:
            spec = COMPONENTS.get(c.name)
            coding = (
                [{"system": LOINC, "code": spec.loinc, "display": spec.loinc_display}] if spec and spec.loinc else []
            )
            coding.append({"system": LOCAL, "code": c.name})
            comps = [
                _statistic("minimum", {"valueQuantity": _quantity(c.min, c.unit)}),
                _statistic("maximum", {"valueQuantity": _quantity(c.max, c.unit)}),
                _statistic("count", {"valueInteger": c.n}),
            ]
            if c.previous_mean is not None:
                comps.append(
                    {
                        "code": _local("previous-month-average", "medelvärde förra månaden"),
                        "valueQuantity": _quantity(c.previous_mean, c.unit),
                    }
                )
            if c.trend is not None:
                comps.append(
                    {
                        "code": _local("trend", "jämfört med förra månaden"),
                        "valueCodeableConcept": {
                            "coding": [{"system": f"{SUMMARY}/trend", "code": c.trend}],
                            "text": c.trend_words,
                        },
                    }
                )
            add(
                f"{k.kind}-{c.name}-average".replace("_", "-"),
                {"coding": coding, "text": f"{c.label}, medelvärde för månaden"},
                valueQuantity=_quantity(c.mean, c.unit),
                component=comps,
            )
        if k.tir_pct is not None:
            add(
                "cgm-time-in-range",
                _local("tir-3.9-10", "Tid inom 3,9–10,0 mmol/L"),
                valueQuantity=_quantity(k.tir_pct, "%", 1),
            )
        if k.weight_change_kg is not None:
            add(
                "weight-change",
                _local("weight-change", "Viktförändring första till sista vägningen"),
                valueQuantity=_quantity(k.weight_change_kg, "kg", 1),
            )
    report = {
        "resourceType": "DiagnosticReport",
        "id": f"monthly-{s.month}",
        "status": "final" if complete else "partial",
        "code": _local("monthly-summary", "Månadssammanfattning av egenmätningar"),
        "subject": {"reference": patient_ref},
        "effectivePeriod": period,
        "issued": issued.isoformat(),
        "performer": [{"display": s.unit_name}],
        "contained": observations,
        "result": [{"reference": f"#{o['id']}"} for o in observations],
    }
    try:
        validated = DiagnosticReport.model_validate(report)
    except ValidationError as err:  # our own mapping is wrong: a server error, logged
        raise RuntimeError(f"FHIR summary failed validation: {err.error_count()} errors") from err
    out: dict[str, Any] = validated.model_dump(mode="json", exclude_none=True)
    return out
