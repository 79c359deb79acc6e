"""Server-rendered pages for the monitoring team (Swedish, no JavaScript needed).

The queue page adds one small script of its own (static/queue.js) that polls its fragment
and merges the cards in place; without it the page is plain HTML with an "Uppdatera" link.

Forms post to page routes that call the same queries as the API and redirect back
(post/redirect/get), so every action works by keyboard and without scripts.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from clinic_api import analytics, audit, charts, labels, queries, queue_view
from clinic_api.deps import COOKIE_NAME, AppSettings, DbConn, PageStaff
from clinic_api.models import CarePlanIn, SafeStr
from clinic_api.routers.gateways import list_for
from device_profiles.vocabulary import COMPONENTS, KINDS, EventType, Kind

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
# One label table for every page (clinic_api/labels.py); the old names stay for the templates.
SEVERITY_SV = labels.SEVERITY
STATUS_SV = labels.STATUS
CONDITION_SV = labels.CONDITION
COMPONENT_SV = labels.COMPONENT
ROUTE_SV = labels.ROUTE
ACTION_SV = labels.ACTION
router = APIRouter(include_in_schema=False)

# Which chart an alert is marked on, by rule-id prefix (CLINICAL_RULES.md ids).
RULE_COMPONENTS = {
    "D": ("glucose_interstitial", "glucose"),
    "HF1": ("weight",),
    "HF2": ("weight",),
    "HF3": ("weight",),
    "HF4": ("weight",),
    "HF5": ("systolic",),
    "HF6": ("pulse",),
    "HF7": ("spo2",),
    "C1": ("spo2",),
    "C2": ("spo2",),
    "C3": ("spo2", "pulse"),
    "C4": ("pulse",),
    "C5": ("pef", "fev1"),
    "A": ("pef",),
    "H": ("systolic", "diastolic"),
}
ANALYTICS_PERIODS = (7, 30, 90)


def _age(seconds: int | float | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def _local(value: dt.datetime | None) -> str:
    if value is None:
        return "–"
    # Stockholm wall-clock for staff; stored and exchanged as UTC.
    return value.astimezone(ZoneInfo("Europe/Stockholm")).strftime("%Y-%m-%d %H:%M")


_sv_num = labels.number
_sv_pct = labels.percent


def _event_type_sv(value: str) -> str:
    try:
        return EventType(value).label_sv
    except ValueError:
        return value  # an alert from before events existed carries its rule id


templates.env.globals.update(
    L=labels.LABELS,
    ROUTE_SV=ROUTE_SV,
    KIND_SV=labels.KIND,
    SEVERITY_SV=SEVERITY_SV,
    STATUS_SV=STATUS_SV,
    CONDITION_SV=CONDITION_SV,
    ACTION_SV=ACTION_SV,
    COMPONENT_SV=COMPONENT_SV,
)


def _localiso(value: object) -> str:
    if isinstance(value, dt.datetime):
        return _local(value)
    try:
        return _local(dt.datetime.fromisoformat(str(value)))
    except ValueError:
        return str(value)


templates.env.filters.update(
    age=_age,
    ago=labels.ago,
    local=_local,
    localiso=_localiso,
    sv_num=_sv_num,
    sv_pct=_sv_pct,
    sv_reading=labels.reading,
    sv_time=labels.local_time,
    event_type_sv=_event_type_sv,
)


def thresholds_for(component: str, plan: dict[str, Any] | None) -> list[charts.Threshold]:
    plan = plan or {}
    th = charts.Threshold
    if component == "systolic":
        return [th(135, "Hemblodtryck"), th(180, "Mycket högt", True), th(90, "Lågt", True)]
    if component == "diastolic":
        return [th(85, "Hemblodtryck"), th(110, "Mycket högt", True)]
    if component in ("glucose_interstitial", "glucose"):
        return [
            th(10, "Målområde övre"),
            th(3.9, "Hypo nivå 1"),
            th(3.0, "Hypo nivå 2", True),
            th(13.9, "Mycket högt", True),
        ]
    if component == "spo2":
        if plan.get("spo2_target") == "hypercapnic":
            return [th(88, "Mål 88–92 % nedre", True)]
        return [th(92, "SpO2 < 92"), th(88, "SpO2 < 88", True)]
    if component == "pulse":
        return [th(100, "Takykardi"), th(40, "Bradykardi", True)]
    if component == "weight" and plan.get("dry_weight_kg"):
        dry = float(plan["dry_weight_kg"])
        return [th(dry, "Torrvikt"), th(dry + 2, "Torrvikt +2 kg", True)]
    if component == "pef" and plan.get("personal_best_pef"):
        best = float(plan["personal_best_pef"])
        return [th(round(best * 0.8), "Gul zon 80 %"), th(round(best * 0.5), "Röd zon 50 %", True)]
    if component == "temperature":
        return [th(38.0, "Feber")]
    return []


def _rule_components(rule_id: str) -> tuple[str, ...] | None:
    for prefix in sorted(RULE_COMPONENTS, key=len, reverse=True):
        if rule_id.startswith(prefix):
            return RULE_COMPONENTS[prefix]
    return None


def _ctx(staff: Any, **kw: Any) -> dict[str, Any]:
    return {"me": staff, **kw}


@router.get("/")
def root() -> Response:
    return RedirectResponse("/ui/alerts", status_code=303)


@router.get("/login-required", response_class=HTMLResponse)
def login_required(request: Request) -> Response:
    return templates.TemplateResponse(request, "login_required.html", {"me": None}, status_code=401)


@router.post("/ui/logout")
def logout() -> Response:
    resp = RedirectResponse("/", status_code=303)
    resp.delete_cookie(COOKIE_NAME, path="/")
    return resp


def _clinical_or_page(request: Request, staff: Any) -> Response | None:
    if not staff.clinical:
        return templates.TemplateResponse(request, "forbidden.html", _ctx(staff), status_code=status.HTTP_403_FORBIDDEN)
    return None


QueueStatus = Literal["open", "acknowledged", "snoozed", "awaiting_confirmation"]
CONDITION_PATTERN = "^(" + "|".join(labels.CONDITION) + ")?$"
UUID_OR_EMPTY = "^([0-9a-fA-F-]{36})?$"


def queue_filters(
    *,
    status_: Annotated[list[QueueStatus] | None, Query(alias="status")] = None,
    severity: Annotated[str, Query(pattern="^(info|low|medium|high|critical)?$")] = "",
    unit: Annotated[str, Query(pattern=UUID_OR_EMPTY)] = "",
    condition: Annotated[str, Query(pattern=CONDITION_PATTERN)] = "",
    mine: bool = False,
    escalated: bool = False,
) -> queue_view.Filters:
    """The queue's GET filters, shared by the page and its fragment (so a poll asks what the page showed)."""
    # Kept in the queue's own order, so the canonical URL does not depend on the click order.
    chosen = tuple(s for s in queue_view.QUEUE_STATUSES if s in set(status_ or ()))
    return queue_view.Filters(
        statuses=chosen or queue_view.ACTIVE_STATUSES,
        severity=severity,
        unit=uuid.UUID(unit) if unit else None,
        condition=condition,
        mine=mine,
        escalated=escalated,
    )


QueueFilters = Annotated[queue_view.Filters, Depends(queue_filters)]


def _queue_cards(conn: DbConn, staff: Any, f: queue_view.Filters, *, poll: bool) -> list[dict[str, Any]]:
    rows = queries.alert_queue(
        conn,
        staff,
        statuses=list(f.statuses),
        unit=f.unit,
        severities=[f.severity] if f.severity else None,
        condition=f.condition or None,
        assigned_to=staff.id if f.mine else None,
        escalated_to=staff.id if f.escalated else None,
        escalated_roles=sorted(staff.roles & {"nurse", "physician"}),
    )
    audit.record(
        conn,
        staff,
        "read",
        "alert_queue",
        detail={"patients": sorted({str(r["patient_id"]) for r in rows}), "page": True, "poll": poll},
    )
    return [queue_view.card(r) for r in rows]


@router.get("/ui/alerts", response_class=HTMLResponse)
def alert_page(
    *,
    request: Request,
    conn: DbConn,
    staff: PageStaff,
    settings: AppSettings,
    filters: QueueFilters,
    poll_s: Annotated[int | None, Query(ge=1, le=300, description="poll interval override (tests)")] = None,
) -> Response:
    if (denied := _clinical_or_page(request, staff)) is not None:
        return denied
    cards = _queue_cards(conn, staff, filters, poll=False)
    return templates.TemplateResponse(
        request,
        "alerts.html",
        _ctx(
            staff,
            alerts=cards,
            f=filters,
            back=filters.url(),
            fragment_url=filters.url("/ui/alerts/fragment"),
            units=analytics.units_of(conn, staff),
            poll_s=poll_s or settings.queue_refresh_s,
            updated=_local_clock(),
        ),
    )


# Declared before any /ui/alerts/{alert_id} page route, so "fragment" is never taken for an id.
@router.get("/ui/alerts/fragment", response_class=HTMLResponse)
def alert_fragment(*, request: Request, conn: DbConn, staff: PageStaff, filters: QueueFilters) -> Response:
    """The queue's cards alone, for the page's script to merge in place (no page reload)."""
    if not staff.clinical:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "clinical data needs the nurse or physician role")
    cards = _queue_cards(conn, staff, filters, poll=True)
    resp = templates.TemplateResponse(
        request,
        "_alert_cards.html",
        _ctx(staff, alerts=cards, back=filters.url()),
    )
    resp.headers["Cache-Control"] = "no-store"  # patient data: never kept by a cache
    return resp


def _local_clock() -> str:
    return dt.datetime.now(ZoneInfo("Europe/Stockholm")).strftime("%H:%M:%S")


@router.post("/ui/alerts/{alert_id}/{action}")
def alert_action_page(
    *,
    request: Request,
    conn: DbConn,
    staff: PageStaff,
    alert_id: Annotated[int, "alert id"],
    action: str,
    comment: Annotated[SafeStr | None, Form(max_length=2000)] = None,
    snooze_hours: Annotated[int | None, Form(ge=1, le=720)] = None,
    back: Annotated[str | None, Form(max_length=300)] = None,
) -> Response:
    if not staff.clinical:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "clinical data needs the nurse or physician role")
    if action not in queries.ACTIONS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown action")
    until = dt.datetime.now(dt.UTC) + dt.timedelta(hours=snooze_hours or 4) if action == "snooze" else None
    row = queries.alert_action(conn, staff, alert_id, action, comment=comment or None, until=until)
    audit.record(conn, staff, action, f"alert/{alert_id}", patient_id=row["patient_id"], detail={"page": True})
    # Only same-site relative paths are followed back.
    target = back if back and back.startswith("/ui/") and not back.startswith("//") else "/ui/alerts"
    return RedirectResponse(target, status_code=303)


@router.get("/ui/patients", response_class=HTMLResponse)
def patients_page(request: Request, conn: DbConn, staff: PageStaff) -> Response:
    if (denied := _clinical_or_page(request, staff)) is not None:
        return denied
    rows = queries.patients_overview(conn, staff)
    audit.record(conn, staff, "read", "patient_list", detail={"patients": [str(r["id"]) for r in rows], "page": True})
    return templates.TemplateResponse(request, "patients.html", _ctx(staff, patients=rows))


@router.get("/ui/patients/{patient_id}", response_class=HTMLResponse)
def patient_page(
    request: Request,
    conn: DbConn,
    staff: PageStaff,
    patient_id: uuid.UUID,
    days: Annotated[int, Query(ge=1, le=365)] = 14,
) -> Response:
    if (denied := _clinical_or_page(request, staff)) is not None:
        return denied
    patient = queries.patient_for(conn, staff, patient_id)
    plan = queries.care_plan_current(conn, patient_id)
    gw = queries.current_gateway(conn, patient_id)
    end = dt.datetime.now(dt.UTC)
    start = end - dt.timedelta(days=days)
    alerts = queries.alert_queue(
        conn, staff, statuses=["open", "acknowledged", "snoozed", "resolved"], patient_id=patient_id, limit=100
    )
    present = [
        r[0]
        for r in conn.execute(
            """SELECT DISTINCT component FROM observation WHERE patient_id = %s AND measured_at >= %s
               AND status <> 'rejected'""",
            (patient_id, start),
        ).fetchall()
    ]
    order = [c for c in COMPONENT_SV if c in present]
    chart_list = []
    for comp in order:
        data = queries.series(conn, patient_id, comp, start=start, end=end, max_points=400)
        marks = [
            charts.AlertMark(a["opened_at"], a["title"], a["severity"])
            for a in alerts
            if a["opened_at"] >= start and comp in (_rule_components(a["rule_id"]) or (comp,))
        ]
        chart_list.append(
            {
                "component": comp,
                "title": COMPONENT_SV[comp],
                "unit": labels.unit(COMPONENTS[comp].unit),
                "n": int(data.n.sum()),
                "svg": charts.render(
                    COMPONENT_SV[comp],
                    str(COMPONENTS[comp].unit),
                    data,
                    start=start,
                    end=end,
                    thresholds=thresholds_for(comp, plan),
                    alerts=marks,
                ),
            }
        )
    summary = queries.summaries(conn, patient_id, end)
    devices = queries.devices(conn, gw["id"]) if gw else []
    audit.record(conn, staff, "read", f"patient/{patient_id}", patient_id=patient_id, detail={"page": True})
    kinds_sv = {str(k): KINDS[Kind(k)].display for k in (plan or {}).get("schedule", {}) if k in set(Kind)}
    return templates.TemplateResponse(
        request,
        "patient.html",
        _ctx(
            staff,
            p=patient,
            plan=plan,
            gw=gw,
            devices=devices,
            alerts=alerts,
            charts=chart_list,
            summary=summary,
            days=days,
            kinds_sv=kinds_sv,
        ),
    )


@router.get("/ui/gateways", response_class=HTMLResponse)
def gateways_page(request: Request, conn: DbConn, staff: PageStaff) -> Response:
    if not (staff.clinical or staff.has("admin")):
        return templates.TemplateResponse(request, "forbidden.html", _ctx(staff), status_code=403)
    rows = list_for(conn, staff)
    for r in rows:
        r["devices"] = queries.devices(conn, r["id"])
    if staff.clinical:
        audit.record(
            conn, staff, "read", "gateway_list", detail={"patients": [str(r["patient_id"]) for r in rows], "page": True}
        )
    return templates.TemplateResponse(request, "gateways.html", _ctx(staff, gateways=rows, now=dt.datetime.now(dt.UTC)))


@router.get("/ui/analytics", response_class=HTMLResponse)
def analytics_page(
    request: Request,
    conn: DbConn,
    staff: PageStaff,
    unit: uuid.UUID | None = None,
    days: Annotated[int, Query(ge=1, le=analytics.MAX_DAYS)] = 30,
) -> Response:
    """Alert burden of one of my units (the same figures as ``GET /api/v1/units/{id}/alert-burden``)."""
    if (denied := _clinical_or_page(request, staff)) is not None:
        return denied
    units = analytics.units_of(conn, staff)
    unit_id = unit if unit is not None else (units[0]["id"] if units else None)
    burden = analytics.alert_burden(conn, staff, unit_id, days) if unit_id is not None else None
    if burden is not None:
        audit.record(conn, staff, "read", f"care_unit/{unit_id}/alert-burden", detail={"days": days, "page": True})
    return templates.TemplateResponse(
        request,
        "analytics.html",
        _ctx(staff, units=units, unit_id=unit_id, days=days, periods=sorted({*ANALYTICS_PERIODS, days}), b=burden),
    )


@router.post("/ui/patients/{patient_id}/care-plan")
def care_plan_page(
    conn: DbConn,
    staff: PageStaff,
    patient_id: uuid.UUID,
    *,
    dry_weight_kg: Annotated[str, Form(max_length=16)] = "",
    personal_best_pef: Annotated[str, Form(max_length=16)] = "",
    spo2_target: Annotated[str, Form(max_length=16)] = "standard",
    notes: Annotated[SafeStr, Form(max_length=4000)] = "",
) -> Response:
    """Edit the care plan's dry weight, personal best PEF, SpO2 target and notes (a new version;
    conditions, thresholds and schedule carry over)."""
    if not staff.clinical:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "clinical data needs the nurse or physician role")
    queries.patient_for(conn, staff, patient_id)
    current = queries.care_plan_current(conn, patient_id) or {}
    try:
        plan = CarePlanIn(
            conditions=current.get("conditions", []),
            thresholds=current.get("thresholds", {}),
            schedule=current.get("schedule", {}),
            # Swedish decimal comma accepted.
            dry_weight_kg=float(dry_weight_kg.replace(",", ".")) if dry_weight_kg.strip() else None,
            personal_best_pef=float(personal_best_pef.replace(",", ".")) if personal_best_pef.strip() else None,
            spo2_target=spo2_target,  # validated by the model
            notes=notes or None,
        )
    except (ValidationError, ValueError) as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"ogiltig vårdplan: {err}") from err
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
