"""FHIR R4 export: one ``Observation`` per stored component (LOINC-coded where a code exists),
one ``Flag`` per alert active in the period, and a ``Bundle`` (type collection) per patient
and period, validated with fhir.resources' R4B models (fhir.resources 8 defaults to R5; R4B
shares R4's Observation, Flag and Bundle)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, status
from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError

from clinic_api import audit, patient_letter, queries
from clinic_api.deps import AppSettings, ClinicalStaff, DbConn
from clinic_api.fhir_summary import summary_report
from clinic_api.routers.letters import MonthParam, month_param
from clinic_api.routers.patients import check_range
from clinic_api.schemas import FhirBundle, FhirDiagnosticReport, documented
from device_profiles.vocabulary import COMPONENTS

router = APIRouter(tags=["fhir"])
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
LOCAL = "urn:egenmon:component"
PSEUDONYM = "urn:egenmon:pseudonym"
RULE = "urn:egenmon:rule"
SEVERITY = "urn:egenmon:severity"
MAX_ENTRIES = 20_000


def observation_resource(row: dict[str, Any], patient_ref: str) -> dict[str, Any]:
    comp = COMPONENTS.get(row["component"])
    coding: list[dict[str, str]] = []
    if comp is not None and comp.loinc:
        coding.append({"system": LOINC, "code": comp.loinc, "display": comp.loinc_display})
    coding.append({"system": LOCAL, "code": row["component"]})
    res: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"{row['reading_id']}-{row['component']}".replace("_", "-")[:64],
        "status": "final" if row["status"] == "valid" else "preliminary",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs" if row["kind"] != "symptoms" else "survey",
                    }
                ]
            }
        ],
        "code": {"coding": coding, "text": comp.loinc_display if comp else row["component"]},
        "subject": {"reference": patient_ref},
        "effectiveDateTime": row["measured_at"].isoformat(),
        "device": {"display": f"{row['device_address']} via {row['gateway_id']}"},
    }
    if row["value"] is not None:
        res["valueQuantity"] = {"value": row["value"], "unit": row["unit"], "system": UCUM, "code": row["unit"]}
    else:
        res["dataAbsentReason"] = {"text": f"censored {row['censored']}" if row["censored"] else "no value"}
    if row["status"] != "valid":
        res["note"] = [{"text": f"{row['status']}: {row['reject_reason'] or ', '.join(row['flags'])}"}]
    return res


def flag_resource(alert: dict[str, Any], patient_ref: str) -> dict[str, Any]:
    period: dict[str, str] = {"start": alert["opened_at"].isoformat()}
    if alert["resolved_at"] is not None:
        period["end"] = alert["resolved_at"].isoformat()
    return {
        "resourceType": "Flag",
        "id": f"alert-{alert['id']}",
        "status": "inactive" if alert["status"] == "resolved" else "active",
        "category": [{"coding": [{"system": SEVERITY, "code": alert["severity"]}], "text": alert["severity"]}],
        "code": {"coding": [{"system": RULE, "code": alert["rule_id"]}], "text": alert["title"]},
        "subject": {"reference": patient_ref},
        "period": period,
    }


@router.get(
    "/patients/{patient_id}/fhir",
    **documented(FhirBundle),
    summary="FHIR R4 Bundle of the patient's observations in a period",
)
def export_bundle(
    *,
    conn: DbConn,
    staff: ClinicalStaff,
    settings: AppSettings,
    patient_id: uuid.UUID,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> dict[str, Any]:
    start, end = check_range(start, end, 30)
    patient = queries.patient_for(conn, staff, patient_id)
    rows = queries.observations_between(conn, patient_id, start, end, limit=MAX_ENTRIES + 1)
    if len(rows) > MAX_ENTRIES:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"more than {MAX_ENTRIES} observations; narrow the period"
        )
    base = settings.public_base_url.rstrip("/") + "/fhir"
    patient_ref = f"Patient/{patient_id}"
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"{base}/{patient_ref}",
            "resource": {
                "resourceType": "Patient",
                "id": str(patient_id),
                "identifier": [{"system": PSEUDONYM, "value": patient["pseudonym"]}],
            },
        }
    ]
    for r in rows:
        obs = observation_resource(r, patient_ref)
        entries.append({"fullUrl": f"{base}/Observation/{obs['id']}", "resource": obs})
    # Alerts active at some time in the period, as Flags for the patient record.
    alerts = queries.alerts_active_between(conn, patient_id, start, end)
    for a in alerts:
        flag = flag_resource(a, patient_ref)
        entries.append({"fullUrl": f"{base}/Flag/{flag['id']}", "resource": flag})
    bundle = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "collection",
        "timestamp": dt.datetime.now(dt.UTC).isoformat(),
        "entry": entries,
    }
    try:
        validated = Bundle.model_validate(bundle)
    except ValidationError as err:  # our own mapping is wrong: a server error, logged
        raise RuntimeError(f"FHIR bundle failed validation: {err.error_count()} errors") from err
    audit.record(
        conn,
        staff,
        "export",
        f"patient/{patient_id}/fhir",
        patient_id=patient_id,
        detail={"start": start.isoformat(), "end": end.isoformat(), "count": len(rows)},
    )
    out: dict[str, Any] = validated.model_dump(mode="json", exclude_none=True)
    return out


@router.get(
    "/patients/{patient_id}/fhir/summary",
    **documented(FhirDiagnosticReport),
    summary="FHIR R4 DiagnosticReport: the patient's monthly summary (the letter's numbers)",
)
def monthly_summary(
    conn: DbConn, staff: ClinicalStaff, patient_id: uuid.UUID, month: MonthParam = None
) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    m = month_param(month, now)
    patient = queries.patient_for(conn, staff, patient_id)
    summary = patient_letter.load(conn, patient, m, now)
    report = summary_report(summary, issued=now, complete=now >= m.end)
    audit.record(
        conn,
        staff,
        "export",
        f"patient/{patient_id}/fhir/summary",
        patient_id=patient_id,
        detail={"month": str(m), "kinds": [k.kind for k in summary.kinds]},
    )
    return report
