"""Patients: list with status, detail, observations, summaries, care plans."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response, status

from clinic_api import audit, queries
from clinic_api.deps import ClinicalStaff, DbConn
from clinic_api.jsonresp import json_response
from clinic_api.models import CarePlanIn
from clinic_api.schemas import (
    CarePlanOut,
    CarePlanVersion,
    ObservationSeries,
    PatientDetail,
    PatientListItem,
    PatientSummary,
    documented,
)
from device_profiles.vocabulary import COMPONENTS

router = APIRouter(prefix="/patients", tags=["patients"])
MAX_RANGE = dt.timedelta(days=400)


def _iso(t_s: float) -> str:
    return dt.datetime.fromtimestamp(t_s, dt.UTC).isoformat()


@router.get(
    "",
    summary="Patients of my units with open alerts, last measurement and adherence",
    response_model=list[PatientListItem],
)
def list_patients(conn: DbConn, staff: ClinicalStaff, unit: uuid.UUID | None = None) -> list[dict[str, Any]]:
    rows = queries.patients_overview(conn, staff, unit)
    audit.record(conn, staff, "read", "patient_list", detail={"patients": [str(r["id"]) for r in rows]})
    return rows


@router.get(
    "/{patient_id}", **documented(PatientDetail), summary="Patient detail: care plan, gateway, devices, open alerts"
)
def get_patient(conn: DbConn, staff: ClinicalStaff, patient_id: uuid.UUID) -> dict[str, Any]:
    patient = queries.patient_for(conn, staff, patient_id)
    gw = queries.current_gateway(conn, patient_id)
    patient["care_plan"] = queries.care_plan_current(conn, patient_id)
    patient["gateway"] = gw
    patient["devices"] = queries.devices(conn, gw["id"]) if gw else []
    patient["alerts"] = queries.alert_queue(
        conn, staff, statuses=["open", "acknowledged", "snoozed"], patient_id=patient_id
    )
    audit.record(conn, staff, "read", f"patient/{patient_id}", patient_id=patient_id)
    return patient


# The query window any time range must fit in (ingest stores nothing outside 2000 .. now).
QUERY_EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
QUERY_LATEST = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)


def check_range(
    start: dt.datetime | None, end: dt.datetime | None, default_days: int
) -> tuple[dt.datetime, dt.datetime]:
    for name, t in (("start", start), ("end", end)):
        # Checked before any arithmetic: 0001-01-01 minus the default span overflowed (500).
        if t is not None and t.tzinfo is not None and not QUERY_EARLIEST <= t <= QUERY_LATEST:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"{name} must lie between {QUERY_EARLIEST.date().isoformat()} and {QUERY_LATEST.date().isoformat()}",
            )
    end = end or dt.datetime.now(dt.UTC)
    start = start or end - dt.timedelta(days=default_days)
    if start.tzinfo is None or end.tzinfo is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "start and end need a timezone offset")
    if start >= end:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "start must be before end")
    if end - start > MAX_RANGE:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "range longer than 400 days")
    return start, end


@router.get(
    "/{patient_id}/observations",
    **documented(ObservationSeries),
    summary="One component over a time range, downsampled when long",
)
def observations(
    *,
    conn: DbConn,
    staff: ClinicalStaff,
    patient_id: uuid.UUID,
    component: Annotated[str, Query(description="e.g. systolic, glucose_interstitial, weight, pef")],
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    max_points: Annotated[int, Query(ge=10, le=5000)] = 500,
) -> Response:
    if component not in COMPONENTS:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"unknown component {component!r}")
    start, end = check_range(start, end, 14)
    queries.patient_for(conn, staff, patient_id)
    b = queries.series(conn, patient_id, component, start=start, end=end, max_points=max_points)
    audit.record(
        conn,
        staff,
        "read",
        f"patient/{patient_id}/observations",
        patient_id=patient_id,
        detail={"component": component, "start": start.isoformat(), "end": end.isoformat()},
    )
    return json_response(
        {
            "component": component,
            "unit": str(COMPONENTS[component].unit),
            "start": start,
            "end": end,
            "downsampled": b.downsampled,
            "points": [
                {"t": _iso(t), "mean": m, "min": lo, "max": hi, "n": n}
                for t, m, lo, hi, n in zip(
                    b.t_s.tolist(), b.mean.tolist(), b.min.tolist(), b.max.tolist(), b.n.tolist(), strict=True
                )
            ],
        }
    )


@router.get(
    "/{patient_id}/summary",
    **documented(PatientSummary),
    summary="Condition summaries: TIR, 7-day BP, weight trend, PEF % of best",
)
def summary(conn: DbConn, staff: ClinicalStaff, patient_id: uuid.UUID) -> dict[str, Any]:
    queries.patient_for(conn, staff, patient_id)
    now = dt.datetime.now(dt.UTC)
    out = queries.summaries(conn, patient_id, now)
    audit.record(conn, staff, "read", f"patient/{patient_id}/summary", patient_id=patient_id)
    return {"patient_id": patient_id, "at": now, **out}


@router.get("/{patient_id}/care-plans", **documented(list[CarePlanVersion]), summary="Care-plan history, newest first")
def care_plans(conn: DbConn, staff: ClinicalStaff, patient_id: uuid.UUID) -> list[dict[str, Any]]:
    queries.patient_for(conn, staff, patient_id)
    rows = queries.care_plan_history(conn, patient_id)
    audit.record(conn, staff, "read", f"patient/{patient_id}/care-plans", patient_id=patient_id)
    return rows


@router.post(
    "/{patient_id}/care-plans",
    **documented(CarePlanOut, 201),
    status_code=201,
    summary="Edit the care plan (adds a new version)",
)
def edit_care_plan(conn: DbConn, staff: ClinicalStaff, patient_id: uuid.UUID, body: CarePlanIn) -> dict[str, Any]:
    queries.patient_for(conn, staff, patient_id)
    row = queries.new_care_plan(conn, staff, patient_id, body)
    audit.record(
        conn,
        staff,
        "update",
        f"patient/{patient_id}/care-plan",
        patient_id=patient_id,
        detail={"version": row["version"]},
    )
    return row
