"""The care plan's page for clinicians: edit with a required reason for the change, and the
version history (version, date, by whom, reason).

The reason is stored in ``care_plan.notes``, the per-version free text the schema already
has, so no migration was needed; the API's ``notes`` field is the same reason.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from clinic_api import audit, form_errors, queries
from clinic_api.auth import Staff
from clinic_api.deps import DbConn, PageStaff
from clinic_api.models import CarePlanIn
from clinic_api.pages import templates

router = APIRouter(include_in_schema=False)
REASON_MAX = 1000


def _history_page(
    request: Request, conn: DbConn, staff: Staff, patient_id: uuid.UUID, *, status_code: int = 200, **kw: Any
) -> Response:
    patient = queries.patient_for(conn, staff, patient_id)
    history = queries.care_plan_history(conn, patient_id)
    audit.record(conn, staff, "read", f"patient/{patient_id}/care-plans", patient_id=patient_id, detail={"page": True})
    current = history[0] if history else None
    form = kw.pop("form", None) or {
        "dry_weight_kg": "" if not current or current["dry_weight_kg"] is None else str(current["dry_weight_kg"]),
        "personal_best_pef": ""
        if not current or current["personal_best_pef"] is None
        else str(current["personal_best_pef"]),
        "spo2_target": current["spo2_target"] if current else "standard",
        "reason": "",
    }
    return templates.TemplateResponse(
        request,
        "care_plans.html",
        {"me": staff, "p": patient, "history": history, "form": form, "errors": {}, **kw},
        status_code=status_code,
    )


@router.get("/ui/patients/{patient_id}/care-plans", response_class=HTMLResponse)
def care_plans_page(request: Request, conn: DbConn, staff: PageStaff, patient_id: uuid.UUID) -> Response:
    if not staff.clinical:
        return templates.TemplateResponse(request, "forbidden.html", {"me": staff}, status_code=403)
    return _history_page(request, conn, staff, patient_id)


def _number(value: str) -> float | None:
    # Swedish decimal comma accepted; a non-number is left to the model's error message.
    value = value.strip().replace(",", ".")
    return float(value) if value else None


@router.post("/ui/patients/{patient_id}/care-plan", response_class=HTMLResponse)
def care_plan_form(
    *,
    request: Request,
    conn: DbConn,
    staff: PageStaff,
    patient_id: uuid.UUID,
    dry_weight_kg: Annotated[str, Form()] = "",
    personal_best_pef: Annotated[str, Form()] = "",
    spo2_target: Annotated[str, Form()] = "standard",
    reason: Annotated[str, Form()] = "",
) -> Response:
    """A new version: dry weight, personal best PEF and SpO2 target from the form, conditions,
    thresholds and schedule carried over, the reason for the change required."""
    if not staff.clinical:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "clinical data needs the nurse or physician role")
    queries.patient_for(conn, staff, patient_id)
    form = {
        "dry_weight_kg": dry_weight_kg,
        "personal_best_pef": personal_best_pef,
        "spo2_target": spo2_target,
        "reason": reason,
    }
    errors: dict[str, str] = {}
    numbers: dict[str, float | None] = {}
    for name, value in (("dry_weight_kg", dry_weight_kg), ("personal_best_pef", personal_best_pef)):
        try:
            numbers[name] = _number(value)
        except ValueError:
            errors[name] = f"Skriv {form_errors.FIELD[name]} som ett tal, t.ex. 72,5."
    if not reason.strip():
        errors["reason"] = "Skriv varför vårdplanen ändras."
    elif len(reason.strip()) > REASON_MAX:
        errors["reason"] = f"Anledningen får vara högst {REASON_MAX} tecken."
    plan = None
    if not errors:
        current = queries.care_plan_current(conn, patient_id) or {}
        try:
            plan = CarePlanIn.model_validate(
                {
                    "conditions": current.get("conditions", []),
                    "thresholds": current.get("thresholds", {}),
                    "schedule": current.get("schedule", {}),
                    **numbers,
                    "spo2_target": spo2_target,
                    "notes": reason.strip(),
                }
            )
        except ValidationError as err:
            errors = {"reason" if k == "notes" else k: v for k, v in form_errors.from_validation(err).items()}
    if plan is None:
        return _history_page(request, conn, staff, patient_id, errors=errors, form=form, status_code=422)
    row = queries.new_care_plan(conn, staff, patient_id, plan)
    audit.record(
        conn,
        staff,
        "update",
        f"patient/{patient_id}/care-plan",
        patient_id=patient_id,
        detail={"version": row["version"], "page": True},
    )
    return RedirectResponse(f"/ui/patients/{patient_id}", status_code=303)
