"""Server-rendered pages for the monitoring team (Swedish, no JavaScript needed).

The queue page adds one small script of its own (static/queue.js) that polls its fragment
and merges the cards in place; without it the page is plain HTML with an "Uppdatera" link.

Forms post to page routes that call the same queries as the API and redirect back
(post/redirect/get), so every action works by keyboard and without scripts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, status
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from pydantic import ValidationError

from clinic_api import (
    agp,
    audit,
    bp_summary,
    chart_limits,
    charts,
    labels,
    queries,
    queue_view,
    ticks,
)
from clinic_api.deps import AppSettings, DbConn, PageStaff
from clinic_api.errors import PageProblem
from clinic_api.models import ReplayIn
from clinic_api.queries import analytics, replays
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
REPLAY_ROWS = 3  # rule / parameter / value rows on the replay form


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


def _sv_value(value: object) -> str:
    """A threshold as written in a care plan: no trailing zeros, decimal comma (3,5; 180)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:g}".replace(".", ",")
    return str(value)


templates.env.filters.update(
    age=_age,
    ago=labels.ago,
    local=_local,
    localiso=_localiso,
    sv_num=_sv_num,
    sv_pct=_sv_pct,
    sv_value=_sv_value,
    sv_reading=labels.reading,
    sv_time=labels.local_time,
    event_type_sv=_event_type_sv,
)


def thresholds_for(component: str, plan: dict[str, Any] | None) -> list[charts.Threshold]:
    """The chart's lines: the engine's rule parameters as the care plan in force sets them."""
    return chart_limits.thresholds_for(component, plan)


def _event_time(alert: dict[str, Any], component: str) -> dt.datetime:
    """When the alerted event happened: the evidence's ``at``, else its newest reading of this
    component, else (older alerts without either) when the alert was opened."""
    ev = alert.get("evidence") or {}
    candidates: list[str] = []
    if isinstance(ev.get("at"), str):
        candidates.append(ev["at"])
    else:
        candidates += [
            str(r["at"])
            for r in ev.get("readings") or []
            if isinstance(r, dict) and "at" in r and str(r.get("series", component)).split(".")[-1] == component
        ]
    times = []
    for c in candidates:
        try:
            t = dt.datetime.fromisoformat(c)
        except ValueError:
            continue
        times.append(t if t.tzinfo else t.replace(tzinfo=dt.UTC))
    opened: dt.datetime = alert["opened_at"]
    return max(times) if times else opened


def _alert_rules(alert: dict[str, Any]) -> set[str]:
    ev = alert.get("evidence") or {}
    rules = {str(alert["rule_id"])}
    rules |= {str(r.get("rule")) for r in ev.get("rules") or [] if isinstance(r, dict) and r.get("rule")}
    return rules


def _rule_components(rule_id: str) -> tuple[str, ...] | None:
    for prefix in sorted(RULE_COMPONENTS, key=len, reverse=True):
        if rule_id.startswith(prefix):
            return RULE_COMPONENTS[prefix]
    return None


# Rendered queue cards by content. Every staff member polling the queue (the fragment every
# 30 s) sees the same card for the same alert, so a card is rendered once per change of
# what it shows (its age in minutes included) instead of on every request: rendering 200
# cards was most of the queue page's time. The key is the whole card and ``back``, so a hit
# is exact, except ``age_s``: it moves every second and the card shows only ``ago``.
_CARD_CACHE: dict[str, Markup] = {}
CARD_CACHE_MAX = 4096
_NOT_SHOWN = frozenset({"age_s"})


def card_html(card: Mapping[str, Any], back: str) -> Markup:
    shown = {k: v for k, v in card.items() if k not in _NOT_SHOWN}
    key = hashlib.sha256(json.dumps([shown, back], sort_keys=True, default=str).encode()).hexdigest()
    html = _CARD_CACHE.get(key)
    if html is None:
        # The template autoescapes everything it prints (templates.env.autoescape), so its output is safe.
        html = Markup(templates.env.get_template("_alert_card.html").render(a=card, back=back))  # noqa: S704
        if len(_CARD_CACHE) >= CARD_CACHE_MAX:
            _CARD_CACHE.clear()
        _CARD_CACHE[key] = html
    return html


templates.env.globals["card_html"] = card_html


def _ctx(staff: Any, **kw: Any) -> dict[str, Any]:
    return {"me": staff, **kw}


@router.get("/")
def root(staff: PageStaff) -> Response:
    """Each role lands on a page it may open."""
    if staff.clinical:
        target = "/ui/alerts"
    elif staff.has("admin"):
        target = "/ui/admin"
    elif staff.has("auditor"):
        target = "/ui/audit"
    else:
        target = "/ui/alerts"  # no role: the page says so (403)
    return RedirectResponse(target, status_code=303)


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
        assigned_to=staff if f.mine else None,
        escalated_to=staff if f.escalated else None,
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
    present = queries.components_present(conn, patient_id, start)
    order = [c for c in COMPONENT_SV if c in present]
    conditions = set((plan or {}).get("conditions") or ())
    c5_data = (
        queries.values_since(conn, patient_id, [c for c in ("fev1", "pef") if c in order], end - dt.timedelta(days=29))
        if "copd" in conditions
        else {}
    )
    chart_list = []
    for comp in order:
        data = queries.series(conn, patient_id, comp, start=start, end=end, max_points=400)
        marks = []
        for a in alerts:
            # An alert of a rule without a known chart is marked on every chart.
            comps = {c for r in _alert_rules(a) for c in _rule_components(r) or ()}
            if comps and comp not in comps:
                continue
            at = _event_time(a, comp)
            if start <= at <= end:
                marks.append(charts.AlertMark(at, a["title"], a["severity"]))
        lines = thresholds_for(comp, plan)
        decimals = chart_limits.DECIMALS.get(comp, 0)
        if comp in c5_data:
            n_sd, src = chart_limits.param(plan, "C5", "n_sd")
            limit = chart_limits.c5_limit(*c5_data[comp], end, n_sd)
            if limit is not None:
                shown = f"{labels.number(limit, decimals)}" + (" (vårdplan)" if src == "care_plan" else "")
                text = f"C5 personligt medel − {labels.number(n_sd, 3)} SD {shown}"
                lines = [*lines, chart_limits.Threshold(limit, text, False, "C5", src)]
        unit = labels.unit(COMPONENTS[comp].unit)
        chart_list.append(
            {
                "component": comp,
                "title": COMPONENT_SV[comp],
                "unit": unit,
                "n": int(data.n.sum()),
                "svg": charts.render(
                    COMPONENT_SV[comp],
                    unit,
                    data,
                    start=start,
                    end=end,
                    thresholds=lines,
                    alerts=marks,
                    bands=chart_limits.bands_for(comp, plan),
                    decimals=decimals,
                    continuous=comp == "glucose_interstitial",
                ),
                "table": charts.data_table(COMPONENT_SV[comp], unit, data, decimals),
            }
        )
    glucose_profile = None
    if "glucose_interstitial" in present or conditions & {"diabetes_t1", "diabetes_t2"}:
        cgm = queries.values_since(conn, patient_id, ["glucose_interstitial"], end - dt.timedelta(days=14))
        prof = agp.compute(*cgm["glucose_interstitial"], end, days=14)
        if prof is not None:
            glucose_profile = {
                "a": prof,
                "svg": charts.render_agp(prof),
                "table": charts.agp_table(prof),
                "tir": charts.render_tir(prof),
            }
    bp = None
    if "systolic" in present or "hypertension" in conditions:
        bpd = queries.values_since(conn, patient_id, ["systolic", "diastolic"], end - dt.timedelta(days=8))
        bp = bp_summary.summarise(*bpd["systolic"], *bpd["diastolic"], end)
    summary = queries.summaries(conn, patient_id, end)
    not_counted = [
        {
            "at": at,
            "what": ", ".join(
                f"{COMPONENT_SV.get(c, c)} {labels.reading(v, u)}" for c, v, u in zip(comps, values, units, strict=True)
            ),
            "why": labels.reject_reason(reason),
        }
        for at, reason, comps, values, units in queries.rejected_readings(conn, patient_id, start)
    ]
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
            agp=glucose_profile,
            agp_ranges=agp.RANGES,
            bp=bp,
            not_counted=not_counted,
            bp_period=f"{ticks.date_label(bp.first_day)}–{ticks.date_label(bp.last_day)}" if bp else "",
            kinds_sv=kinds_sv,
        ),
    )


@router.get("/ui/gateways", response_class=HTMLResponse)
def gateways_page(request: Request, conn: DbConn, staff: PageStaff) -> Response:
    if not (staff.clinical or staff.has("admin")):
        return templates.TemplateResponse(request, "forbidden.html", _ctx(staff), status_code=403)
    rows = queries.gateways_for(conn, staff)
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
    replay_rows = replays.list_for_unit(conn, staff, unit_id) if unit_id is not None else []
    if burden is not None:
        audit.record(conn, staff, "read", f"care_unit/{unit_id}/alert-burden", detail={"days": days, "page": True})
        audit.record(conn, staff, "read", f"care_unit/{unit_id}/replays", detail={"page": True})
    return templates.TemplateResponse(
        request,
        "analytics.html",
        _ctx(
            staff,
            units=units,
            unit_id=unit_id,
            days=days,
            periods=sorted({*ANALYTICS_PERIODS, days}),
            b=burden,
            replays=replay_rows,
            replay_periods=ANALYTICS_PERIODS,
            replay_rows=range(1, REPLAY_ROWS + 1),
        ),
    )


def _proposal_from_form(rows: list[tuple[str, str, str]]) -> dict[str, dict[str, float]]:
    """Rule / parameter / value rows → a proposal; empty rows are skipped, half-filled ones refused."""
    out: dict[str, dict[str, float]] = {}
    for n, row in enumerate(rows, start=1):
        rule_id, name, value = (field.strip() for field in row)
        if not (rule_id or name or value):
            continue
        if not (rule_id and name and value):
            raise ValueError(f"rad {n}: ange regel, parameter och värde")
        try:
            number = float(value.replace(",", "."))  # Swedish decimal comma accepted
        except ValueError as err:
            raise ValueError(f"rad {n}: värdet {value!r} är inte ett tal") from err
        out.setdefault(rule_id, {})[name] = number
    return out


@router.post("/ui/analytics/replays")
def replay_create_page(
    conn: DbConn,
    staff: PageStaff,
    *,
    unit: Annotated[uuid.UUID, Form()],
    days: Annotated[int, Form(ge=1, le=90)] = 30,
    condition: Annotated[str, Form(max_length=32)] = "",
    rule_1: Annotated[str, Form(max_length=16)] = "",
    param_1: Annotated[str, Form(max_length=64)] = "",
    value_1: Annotated[str, Form(max_length=32)] = "",
    rule_2: Annotated[str, Form(max_length=16)] = "",
    param_2: Annotated[str, Form(max_length=64)] = "",
    value_2: Annotated[str, Form(max_length=32)] = "",
    rule_3: Annotated[str, Form(max_length=16)] = "",
    param_3: Annotated[str, Form(max_length=64)] = "",
    value_3: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    """Queue a threshold replay from the analytics page (the checks of ``POST /units/{id}/replays``)."""
    if not staff.clinical:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "clinical data needs the nurse or physician role")
    try:
        proposal = _proposal_from_form(
            [(rule_1, param_1, value_1), (rule_2, param_2, value_2), (rule_3, param_3, value_3)]
        )
        body = ReplayIn.model_validate({"days": days, "condition": condition or None, "proposal": proposal})
    except (ValidationError, ValueError) as err:
        message = str(err) if isinstance(err, ValueError) and not isinstance(err, ValidationError) else ""
        if not message or not message.startswith("rad "):
            message = "ogiltigt förslag: kontrollera regel, parameter och värde (ett ändligt tal)"
        raise PageProblem(status.HTTP_422_UNPROCESSABLE_CONTENT, message) from err
    row = replays.create(conn, staff, unit, body)
    audit.record(
        conn,
        staff,
        "create",
        f"care_unit/{unit}/replays",
        detail={
            "replay_id": row["id"],
            "days": body.days,
            "condition": body.condition,
            "proposal": proposal,
            "page": True,
        },
    )
    return RedirectResponse(f"/ui/analytics?unit={unit}#prova", status_code=303)


@router.get("/ui/analytics/replays/{replay_id}", response_class=HTMLResponse)
def replay_page(
    request: Request, conn: DbConn, staff: PageStaff, replay_id: Annotated[int, PathParam(ge=1, le=2**62)]
) -> Response:
    """One replay request: its status until done, then the comparison and the past alerts."""
    if (denied := _clinical_or_page(request, staff)) is not None:
        return denied
    row = replays.get(conn, staff, replay_id)
    audit.record(
        conn,
        staff,
        "read",
        f"replay/{replay_id}",
        detail={"patients": replays.patients_named(conn, row), "page": True},
    )
    return templates.TemplateResponse(request, "replay.html", _ctx(staff, r=row, res=row["result"]))
