"""The admin's pages (Swedish): care units, staff accounts, patient enrolment, gateway kits,
kit assignment and the printable one-time code letter.

Forms post to routes that call the same query functions as the API (queries.admin,
queries.enrollment) and redirect back (post/redirect/get). A refused form is shown again
with Swedish messages next to its fields (clinic_api/form_errors.py), never as 422 JSON.
The one exception to post/redirect/get is the code letter: the code exists only in the
response that issues it (the database keeps its HMAC), so it is rendered, not redirected to.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from clinic_api import audit, form_errors, labels, queries
from clinic_api.auth import Staff
from clinic_api.deps import AppSettings, DbConn, PageStaff
from clinic_api.errors import NotFound
from clinic_api.models import CarePlanIn, GatewayIn, PatientIn, StaffIn, StaffUpdateIn, UnitIn
from clinic_api.pages import templates

router = APIRouter(prefix="/ui/admin", include_in_schema=False)

# Post/redirect/get confirmations: the redirect names one of these, never user input.
DONE: Mapping[str, str] = {
    "unit": "Vårdenheten är skapad.",
    "staff": "Kontot är skapat.",
    "staff-updated": "Behörigheterna är sparade.",
    "enrolled": "Patienten är inskriven. Tilldela en gateway och skriv ut engångskoden.",
    "gateway": "Gatewayen är registrerad.",
    "assigned": "Gatewayen är tilldelad patienten.",
    "ended": "Tilldelningen är avslutad. Gatewayen kan nu tilldelas en annan patient.",
}
ROLES = tuple(labels.ROLE)
# The first care plan's reason for change (the version history's first row).
ENROLMENT_REASON = "Inskrivning"


def _forbidden(request: Request, staff: Staff) -> Response:
    return templates.TemplateResponse(
        request,
        "forbidden.html",
        {"me": staff, "message": "Sidorna för administration kräver rollen Administratör."},
        status_code=status.HTTP_403_FORBIDDEN,
    )


def _page(
    request: Request, staff: Staff, name: str, ok: str | None = None, *, status_code: int = 200, **kw: Any
) -> Response:
    return templates.TemplateResponse(
        request,
        name,
        {"me": staff, "done": DONE.get(ok or ""), "errors": {}, "form": {}, **kw},
        status_code=status_code,
    )


def _refused(err: HTTPException | NotFound) -> form_errors.Errors:
    errors = form_errors.from_refusal(err)
    if errors is None:
        raise err
    return errors


@router.get("", response_class=HTMLResponse)
def admin_home(request: Request, conn: DbConn, staff: PageStaff) -> Response:
    if not staff.has("admin"):
        return _forbidden(request, staff)
    counts = queries.admin.admin_counts(conn, list(staff.unit_ids))
    return _page(request, staff, "admin.html", counts=counts)


# --- care units -------------------------------------------------------------------------


def _units_page(request: Request, conn: DbConn, staff: Staff, **kw: Any) -> Response:
    return _page(request, staff, "admin_units.html", units=queries.admin.list_units(conn), **kw)


@router.get("/units", response_class=HTMLResponse)
def units_page(request: Request, conn: DbConn, staff: PageStaff, ok: str | None = None) -> Response:
    if not staff.has("admin"):
        return _forbidden(request, staff)
    return _units_page(request, conn, staff, ok=ok)


@router.post("/units", response_class=HTMLResponse)
def create_unit(
    *,
    request: Request,
    conn: DbConn,
    staff: PageStaff,
    code: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
) -> Response:
    if not staff.has("admin"):
        return _forbidden(request, staff)
    form = {"code": code.strip(), "name": name.strip()}
    try:
        row = queries.admin.create_unit(conn, UnitIn.model_validate(form))
    except ValidationError as err:
        return _units_page(request, conn, staff, errors=form_errors.from_validation(err), form=form, status_code=422)
    except (HTTPException, NotFound) as err:
        return _units_page(request, conn, staff, errors=_refused(err), form=form, status_code=422)
    audit.record(conn, staff, "create", f"care_unit/{row['id']}", detail={"page": True})
    return RedirectResponse("/ui/admin/units?ok=unit", status_code=303)


# --- staff accounts ---------------------------------------------------------------------


def _staff_page(request: Request, conn: DbConn, staff: Staff, **kw: Any) -> Response:
    return _page(
        request,
        staff,
        "admin_staff.html",
        accounts=queries.admin.list_staff(conn),
        units=queries.admin.list_units(conn),
        roles=ROLES,
        **kw,
    )


@router.get("/staff", response_class=HTMLResponse)
def staff_page(request: Request, conn: DbConn, staff: PageStaff, ok: str | None = None) -> Response:
    if not staff.has("admin"):
        return _forbidden(request, staff)
    return _staff_page(request, conn, staff, ok=ok)


@router.post("/staff", response_class=HTMLResponse)
def create_staff(
    *,
    request: Request,
    conn: DbConn,
    staff: PageStaff,
    subject: Annotated[str, Form()] = "",
    display_name: Annotated[str, Form()] = "",
    roles: Annotated[list[str] | None, Form()] = None,
    unit_ids: Annotated[list[str] | None, Form()] = None,
) -> Response:
    if not staff.has("admin"):
        return _forbidden(request, staff)
    form: dict[str, Any] = {
        "subject": subject.strip(),
        "display_name": display_name.strip(),
        "roles": roles or [],
        "unit_ids": unit_ids or [],
    }
    try:
        row = queries.admin.create_staff(conn, StaffIn.model_validate(form))
    except ValidationError as err:
        return _staff_page(request, conn, staff, errors=form_errors.from_validation(err), form=form, status_code=422)
    except (HTTPException, NotFound) as err:
        return _staff_page(request, conn, staff, errors=_refused(err), form=form, status_code=422)
    audit.record(conn, staff, "create", f"staff/{row['id']}", detail={"page": True})
    return RedirectResponse("/ui/admin/staff?ok=staff", status_code=303)


def _staff_edit_page(request: Request, conn: DbConn, staff: Staff, account: dict[str, Any], **kw: Any) -> Response:
    return _page(
        request,
        staff,
        "admin_staff_edit.html",
        account=account,
        units=queries.admin.list_units(conn),
        roles=ROLES,
        **kw,
    )


@router.get("/staff/{staff_id}", response_class=HTMLResponse)
def staff_edit_page(request: Request, conn: DbConn, staff: PageStaff, staff_id: uuid.UUID) -> Response:
    if not staff.has("admin"):
        return _forbidden(request, staff)
    account = queries.admin.get_staff(conn, staff_id)
    form = {"roles": account["roles"], "unit_ids": [str(u) for u in account["unit_ids"]], "active": account["active"]}
    return _staff_edit_page(request, conn, staff, account, form=form)


@router.post("/staff/{staff_id}", response_class=HTMLResponse)
def update_staff(
    *,
    request: Request,
    conn: DbConn,
    staff: PageStaff,
    staff_id: uuid.UUID,
    roles: Annotated[list[str] | None, Form()] = None,
    unit_ids: Annotated[list[str] | None, Form()] = None,
    active: Annotated[str, Form()] = "",
) -> Response:
    if not staff.has("admin"):
        return _forbidden(request, staff)
    account = queries.admin.get_staff(conn, staff_id)
    form: dict[str, Any] = {"roles": roles or [], "unit_ids": unit_ids or [], "active": active == "on"}
    try:
        row = queries.admin.update_staff(conn, staff.id, staff_id, StaffUpdateIn.model_validate(form))
    except ValidationError as err:
        errors = form_errors.from_validation(err)
        return _staff_edit_page(request, conn, staff, account, errors=errors, form=form, status_code=422)
    except (HTTPException, NotFound) as err:
        return _staff_edit_page(request, conn, staff, account, errors=_refused(err), form=form, status_code=422)
    audit.record(
        conn,
        staff,
        "update",
        f"staff/{staff_id}",
        detail={**queries.admin.staff_change_detail(row, row["previous"]), "page": True},
    )
    return RedirectResponse("/ui/admin/staff?ok=staff-updated", status_code=303)


# --- gateway kits -----------------------------------------------------------------------


def _gateways_page(request: Request, conn: DbConn, staff: Staff, **kw: Any) -> Response:
    rows = queries.gateway_kits(conn)
    return _page(request, staff, "admin_gateways.html", gateways=rows, **kw)


@router.get("/gateways", response_class=HTMLResponse)
def gateways_page(request: Request, conn: DbConn, staff: PageStaff, ok: str | None = None) -> Response:
    if not staff.has("admin"):
        return _forbidden(request, staff)
    return _gateways_page(request, conn, staff, ok=ok)


@router.post("/gateways", response_class=HTMLResponse)
def register_gateway(
    *,
    request: Request,
    conn: DbConn,
    staff: PageStaff,
    id: Annotated[str, Form()] = "",
    serial: Annotated[str, Form()] = "",
) -> Response:
    if not staff.has("admin"):
        return _forbidden(request, staff)
    form = {"id": id.strip(), "serial": serial.strip() or None}
    try:
        row = queries.enrollment.register_gateway(conn, GatewayIn.model_validate(form))
    except ValidationError as err:
        errors = form_errors.from_validation(err)
        return _gateways_page(request, conn, staff, errors=errors, form=form, status_code=422)
    except (HTTPException, NotFound) as err:
        return _gateways_page(request, conn, staff, errors=_refused(err), form=form, status_code=422)
    audit.record(conn, staff, "create", f"gateway/{row['id']}", detail={"page": True})
    return RedirectResponse("/ui/admin/gateways?ok=gateway", status_code=303)


# --- patient enrolment ------------------------------------------------------------------


def _my_units(conn: DbConn, staff: Staff) -> list[dict[str, Any]]:
    return [u for u in queries.admin.list_units(conn) if u["id"] in staff.unit_ids]


def _patients_page(request: Request, conn: DbConn, staff: Staff, **kw: Any) -> Response:
    rows = queries.enrollment.roster(conn, staff)
    # Names of patients are shown: the list read is audited like the clinicians' patient list.
    audit.record(conn, staff, "read", "enrolment_list", detail={"patients": [str(r["id"]) for r in rows], "page": True})
    return _page(
        request,
        staff,
        "admin_patients.html",
        patients=rows,
        units=_my_units(conn, staff),
        conditions=labels.CONDITION,
        **kw,
    )


@router.get("/patients", response_class=HTMLResponse)
def patients_page(request: Request, conn: DbConn, staff: PageStaff) -> Response:
    if not staff.has("admin"):
        return _forbidden(request, staff)
    return _patients_page(request, conn, staff)


@router.post("/patients", response_class=HTMLResponse)
def enrol_patient(
    *,
    request: Request,
    conn: DbConn,
    staff: PageStaff,
    personnummer: Annotated[str, Form()] = "",
    display_name: Annotated[str, Form()] = "",
    unit_id: Annotated[str, Form()] = "",
    conditions: Annotated[list[str] | None, Form()] = None,
) -> Response:
    if not staff.has("admin"):
        return _forbidden(request, staff)
    # The personnummer is never put back into the form, not even after an error.
    form: dict[str, Any] = {"display_name": display_name.strip(), "unit_id": unit_id, "conditions": conditions or []}
    try:
        plan = CarePlanIn(conditions=conditions or [], notes=ENROLMENT_REASON)
        body = PatientIn.model_validate(
            {
                "personnummer": personnummer.strip(),
                "display_name": form["display_name"],
                "unit_id": unit_id,
                "care_plan": plan,
            }
        )
        patient = queries.enrollment.create_patient(conn, staff, body)
    except ValidationError as err:
        errors = form_errors.from_validation(err)
        return _patients_page(request, conn, staff, errors=errors, form=form, status_code=422)
    except (HTTPException, NotFound) as err:
        return _patients_page(request, conn, staff, errors=_refused(err), form=form, status_code=422)
    audit.record(conn, staff, "create", "patient", patient_id=patient["id"], detail={"page": True})
    return RedirectResponse(f"/ui/admin/patients/{patient['id']}?ok=enrolled", status_code=303)


def _kit_page(request: Request, conn: DbConn, staff: Staff, patient_id: uuid.UUID, **kw: Any) -> Response:
    patient = queries.patient_for(conn, staff, patient_id)
    gw = queries.current_gateway(conn, patient_id)
    audit.record(conn, staff, "read", f"patient/{patient_id}/enrolment", patient_id=patient_id, detail={"page": True})
    return _page(
        request,
        staff,
        "admin_patient.html",
        p=patient,
        gw=gw,
        free=queries.enrollment.free_gateways(conn),
        **kw,
    )


@router.get("/patients/{patient_id}", response_class=HTMLResponse)
def kit_page(
    request: Request, conn: DbConn, staff: PageStaff, patient_id: uuid.UUID, ok: str | None = None
) -> Response:
    if not staff.has("admin"):
        return _forbidden(request, staff)
    return _kit_page(request, conn, staff, patient_id, ok=ok)


@router.post("/patients/{patient_id}/gateway", response_class=HTMLResponse)
def assign_gateway(
    *,
    request: Request,
    conn: DbConn,
    staff: PageStaff,
    patient_id: uuid.UUID,
    gateway_id: Annotated[str, Form()] = "",
) -> Response:
    if not staff.has("admin"):
        return _forbidden(request, staff)
    queries.patient_for(conn, staff, patient_id)
    if not gateway_id:
        return _kit_page(request, conn, staff, patient_id, errors={"gateway_id": "Välj en gateway."}, status_code=422)
    try:
        queries.enrollment.assign_gateway(conn, staff, patient_id, gateway_id)
    except (HTTPException, NotFound) as err:
        return _kit_page(request, conn, staff, patient_id, errors=_refused(err), status_code=422)
    audit.record(
        conn,
        staff,
        "assign_gateway",
        f"patient/{patient_id}/gateway",
        patient_id=patient_id,
        detail={"gateway_id": gateway_id, "page": True},
    )
    return RedirectResponse(f"/ui/admin/patients/{patient_id}?ok=assigned", status_code=303)


@router.post("/patients/{patient_id}/gateway/end", response_class=HTMLResponse)
def end_assignment(request: Request, conn: DbConn, staff: PageStaff, patient_id: uuid.UUID) -> Response:
    if not staff.has("admin"):
        return _forbidden(request, staff)
    try:
        row = queries.enrollment.end_assignment(conn, staff, patient_id)
    except (HTTPException, NotFound) as err:
        return _kit_page(request, conn, staff, patient_id, errors=_refused(err), status_code=422)
    audit.record(
        conn,
        staff,
        "end_gateway_assignment",
        f"patient/{patient_id}/gateway",
        patient_id=patient_id,
        detail={"gateway_id": row["gateway_id"], "page": True},
    )
    return RedirectResponse(f"/ui/admin/patients/{patient_id}?ok=ended", status_code=303)


@router.post("/patients/{patient_id}/enrollment-code", response_class=HTMLResponse)
def issue_code(
    request: Request, conn: DbConn, staff: PageStaff, settings: AppSettings, patient_id: uuid.UUID
) -> Response:
    if not staff.has("admin"):
        return _forbidden(request, staff)
    patient = queries.patient_for(conn, staff, patient_id)
    try:
        out = queries.enrollment.issue_code(
            conn, staff, patient_id, pepper=settings.enrollment_pepper, ttl_s=settings.enrollment_code_ttl_s
        )
    except (HTTPException, NotFound) as err:
        return _kit_page(request, conn, staff, patient_id, errors=_refused(err), status_code=422)
    audit.record(
        conn,
        staff,
        "issue_enrollment_code",
        f"gateway/{out['gateway_id']}",
        patient_id=patient_id,
        detail={"page": True},
    )
    expires_local = out["expires_at"].astimezone(labels.TZ)
    resp = templates.TemplateResponse(
        request,
        "enrollment_letter.html",
        {
            "me": staff,
            "code": out["code"],
            "gateway_id": out["gateway_id"],
            "expires": f"{expires_local.day} {labels.MONTHS_LONG[expires_local.month - 1]} {expires_local.year}",
            "unit_name": patient["unit_name"],
            "clinic_url": settings.public_base_url,
            "issued": labels.local_time(dt.datetime.now(dt.UTC)),
            "patient_id": patient_id,
        },
    )
    # Shown once: never kept by a cache or the browser's history.
    resp.headers["Cache-Control"] = "no-store"
    return resp
