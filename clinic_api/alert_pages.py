"""The alert detail page (/ui/alerts/{id}) and the page form of every staff action.

The page explains the alert ("Varför": every firing rule's value, thresholds and readings
in clinical Swedish), shows its timeline, and carries the forms for claiming, assigning,
escalating and resolving. Actions post here, call ``queries.alert_action`` (the one
implementation of the staff actions) and redirect back with ``?done=<what>``, which
base.html shows as a Swedish sentence in an aria-live region.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Form, HTTPException, Path, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from clinic_api import audit, labels, queries
from clinic_api.deps import AppSettings, DbConn, PageStaff
from clinic_api.errors import NotFound
from clinic_api.models import SafeStr
from clinic_api.pages import templates
from device_profiles.vocabulary import COMPONENTS

router = APIRouter(include_in_schema=False)
AlertId = Annotated[int, Path(ge=1, le=2**62)]

# What each action's flash says (labels.DONE keys).
DONE_CODE = {
    "acknowledge": "acknowledged",
    "comment": "commented",
    "snooze": "snoozed",
    "escalate": "escalated",
    "resolve": "resolved",
    "undo_resolve": "resolve_undone",
    "claim": "claimed",
    "assign": "assigned",
    "unassign": "unassigned",
    "handover": "handover",
}
# Which form of the detail page a refused action returns to.
FORM_ANCHOR = {"escalate": "eskalera", "resolve": "avsluta", "assign": "ansvar", "handover": "ansvar"}
# The unit of a rule's value where it is not the unit of the series it reads.
RULE_VALUE_UNIT = {"A1": "% av personbästa", "A2": "% av personbästa", "A3": "% av personbästa", "A4": "%", "A5": "%"}
# Rules whose value is a score, a count or a share without a stated unit: shown bare.
RULE_VALUE_BARE = frozenset(
    {"C2", "C3", "C5", "C6", "C7", "D8", "D9", "D10", "HF8", "HF9", "A6", "H6", "NODATA", "NEWS2"}
)
SNOOZE_HOURS = (4, 24, 72)


def _component_unit(series: str) -> str:
    comp = COMPONENTS.get(series.rsplit(".", 1)[-1])  # "glucose_cgm.glucose_interstitial" or "weight"
    return labels.unit(comp.unit) if comp else ""


def _with_unit(value: object, unit: str) -> str:
    if isinstance(value, str):  # a censored sensor reading: "LOW" / "HIGH"
        return {"LOW": "under mätområdet", "HIGH": "över mätområdet"}.get(value, value)
    decimals = 0 if isinstance(value, int) or (isinstance(value, float) and value.is_integer()) else 1
    if isinstance(value, float) and not value.is_integer() and abs(value) < 1:
        decimals = 2
    text = labels.number(value, decimals)
    return f"{text} {unit}".strip() if text != "–" else text


def rule_explanations(alert: dict[str, Any]) -> list[dict[str, Any]]:
    """Every firing rule's evidence, readable: name, value with unit, thresholds, readings."""
    evidence = alert.get("evidence") or {}
    rules = evidence.get("rules") if isinstance(evidence.get("rules"), list) else None
    out = []
    for ev in rules or [evidence]:
        if not isinstance(ev, dict):
            continue
        rule_id = str(ev.get("rule") or ev.get("rule_id") or alert["rule_id"])
        raw_readings = ev.get("readings")
        readings: list[Any] = raw_readings if isinstance(raw_readings, list) else []
        first_series = next((str(r.get("series", "")) for r in readings if isinstance(r, dict)), "")
        bare = rule_id in RULE_VALUE_BARE
        unit = "" if bare else RULE_VALUE_UNIT.get(rule_id) or _component_unit(first_series)
        thresholds = []
        th_in = ev.get("thresholds")
        raw_th: dict[str, Any] = th_in if isinstance(th_in, dict) else {}
        for name, th in raw_th.items():
            value, source = (th.get("value"), th.get("source")) if isinstance(th, dict) else (th, None)
            thresholds.append(
                {
                    "name": labels.label(labels.THRESHOLD, name),
                    "code": name,
                    "value": _with_unit(value, labels.threshold_unit(name)),
                    "source": labels.label(labels.THRESHOLD_SOURCE, source) if source else "",
                    "from_plan": source == "care_plan",
                }
            )
        out.append(
            {
                "rule_id": rule_id,
                "name": labels.label(labels.RULE, rule_id),
                "severity": ev.get("severity"),
                "value": _with_unit(ev["value"], unit) if ev.get("value") is not None else None,
                "at": labels.local_time(ev.get("at")) if ev.get("at") else "",
                "since": labels.local_time(ev.get("since")) if ev.get("since") else "",
                "thresholds": thresholds,
                "readings": [
                    {
                        "what": labels.label(labels.COMPONENT, str(r.get("series", "")).rsplit(".", 1)[-1]),
                        "at": labels.local_time(r.get("at")),
                        "value": _with_unit(r.get("value"), _component_unit(str(r.get("series", "")))),
                    }
                    for r in readings
                    if isinstance(r, dict)
                ],
            }
        )
    return out


def _minutes(value: object) -> str:
    return f"{labels.number(value, 0)} min"


def event_lines(
    event: str, d: dict[str, Any], names: dict[str, str], messages: dict[str, tuple[str, str]]
) -> list[str]:
    """The details of one timeline event as Swedish sentences (codes never shown bare)."""

    def who(key: str) -> str:
        return names.get(str(d.get(key)), "okänd")

    lines: list[str] = []
    if event == "opened":
        if d.get("rule"):
            lines.append(f"Regel: {labels.label(labels.RULE, d['rule'])}")
        if d.get("route"):
            lines.append(f"Till: {labels.label(labels.ROUTE, d['route'])}")
    elif event == "updated":
        if d.get("rule"):
            lines.append(f"Regel: {labels.label(labels.RULE, d['rule'])}")
        if d.get("value") is not None:
            lines.append(
                f"Värde: {labels.number(d['value'])}" + (f" ({labels.local_time(d['at'])})" if d.get("at") else "")
            )
    elif event == "escalated_severity":
        lines.append(
            f"Från {labels.label(labels.SEVERITY, d.get('from'))} till {labels.label(labels.SEVERITY, d.get('to'))}"
        )
    elif event == "snoozed" and d.get("until"):
        lines.append(f"Vilande till {labels.local_time(d['until'])}")
    elif event == "reopened":
        lines.append("Vilotiden är slut." if d.get("reason") == "snooze ended" else "Öppnat igen.")
    elif event == "escalated":
        if d.get("by") == "deadline":
            lines.append(f"Automatiskt: inte kvitterat inom {_minutes(d.get('deadline_min'))}.")
        elif d.get("to"):
            lines.append(f"Till: {who('to')}")
        elif d.get("role"):
            lines.append(f"Till: {labels.label(labels.ROLE, d['role'])} (roll)")
        if d.get("level"):
            lines.append(f"Eskaleringsnivå {d['level']}")
    elif event == "resolved":
        if d.get("reason") and d.get("by") not in ("triage", "platform"):
            lines.append(f"Anledning: {labels.label(labels.RESOLUTION_REASON, d['reason'])}")
        elif d.get("by") == "triage":
            lines.append("Automatiskt: de saknade mätningarna har kommit in.")
        elif d.get("by") == "platform":
            lines.append("Automatiskt: en ny episod av samma händelse blev ett nytt larm.")
    elif event == "resolve_undone" and d.get("restored_status"):
        lines.append(f"Status återställd: {labels.label(labels.STATUS, d['restored_status'])}")
    elif event == "resolution_suggested":
        if d.get("by") == "triage":
            lines.append("Mätningarna har kommit in.")
        elif d.get("clear_since"):
            lines.append(f"Inga avvikande värden sedan {labels.local_time(d['clear_since'])}")
    elif event == "confirmation_requested":
        text = f"Ommätning begärd inom {_minutes(d.get('within_min'))}"
        lines.append(text + (f", senast {labels.local_time(d['until'])}" if d.get("until") else ""))
    elif event == "confirmed":
        if d.get("by") == "no repeat":
            lines.append("Ingen ommätning kom inom tidsfristen; larmet visas för teamet.")
        elif d.get("repeat_at"):
            lines.append(f"Ommätningen {labels.local_time(d['repeat_at'])} var också avvikande.")
    elif event == "not_confirmed" and d.get("repeat_at"):
        lines.append(f"Ommätningen {labels.local_time(d['repeat_at'])} var normal.")
    elif event == "routed":
        lines.append(f"Från {labels.label(labels.ROUTE, d.get('from'))} till {labels.label(labels.ROUTE, d.get('to'))}")
    elif event in ("assigned", "handover"):
        if d.get("to"):
            lines.append(f"Till: {who('to')}")
        if d.get("previous") and d.get("previous") != d.get("to"):
            lines.append(f"Tidigare: {who('previous')}")
    elif event == "unassigned" and d.get("previous"):
        lines.append(f"Var tilldelat: {who('previous')}")
    elif event.startswith("message_"):
        level, text = messages.get(str(d.get("message")), (str(d.get("level") or ""), ""))
        if level:
            lines.append(f"Meddelande: {labels.label(labels.MESSAGE_LEVEL, level)}")
        if text:
            lines.append(f"”{text}”")
    return lines


def timeline(
    conn: psycopg.Connection[Any], alert_id: int, assignees: set[str]
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    events = queries.alert_events(conn, alert_id)
    ids = set(assignees)
    for e in events:
        ids.update(str(e["details"][k]) for k in ("to", "by", "previous") if e["details"].get(k))
    names = queries.admin.staff_names(conn, ids)
    messages = (
        queries.patient_messages(conn, alert_id) if any(e["event"].startswith("message_") for e in events) else {}
    )
    items = [
        {
            "event": e["event"],
            "label": labels.label(labels.TIMELINE_EVENT, e["event"]),
            "at": labels.local_time(e["at"]),
            "at_iso": e["at"].isoformat(),
            "who": e["staff_name"] or "Systemet",
            "comment": e["comment"],
            "lines": event_lines(e["event"], e["details"] or {}, names, messages),
        }
        for e in events
    ]
    return items, names


def _not_found_page(request: Request, staff: Any) -> Response:
    return templates.TemplateResponse(
        request, "alert_not_found.html", {"me": staff}, status_code=status.HTTP_404_NOT_FOUND
    )


# ":int": "/ui/alerts/fragment" (pages.py, the queue's poll) is not an id.
@router.get("/ui/alerts/{alert_id:int}", response_class=HTMLResponse)
def alert_detail_page(
    request: Request, conn: DbConn, staff: PageStaff, settings: AppSettings, alert_id: AlertId
) -> Response:
    if not staff.clinical:
        return templates.TemplateResponse(request, "forbidden.html", {"me": staff}, status_code=403)
    try:
        alert = queries.alert_for(conn, staff, alert_id)
    except NotFound:
        return _not_found_page(request, staff)
    people = {str(v) for v in (alert["assigned_to"], alert["escalated_to"]) if v}
    items, names = timeline(conn, alert_id, people)
    colleagues = queries.clinical_colleagues(conn, alert["unit_id"])
    undo_s = queries.undo_seconds_left(conn, staff, alert, window_s=settings.undo_resolve_s)
    audit.record(conn, staff, "read", f"alert/{alert_id}", patient_id=alert["patient_id"], detail={"page": True})
    return templates.TemplateResponse(
        request,
        "alert.html",
        {
            "me": staff,
            "a": alert,
            "rules": rule_explanations(alert),
            "timeline": items,
            "assignee": names.get(str(alert["assigned_to"])) if alert["assigned_to"] else None,
            "recipient": names.get(str(alert["escalated_to"])) if alert["escalated_to"] else None,
            "colleagues": [c for c in colleagues if c["id"] != staff.id],
            "physicians": [c for c in colleagues if "physician" in c["roles"]],
            "reasons": {r: labels.RESOLUTION_REASON[r] for r in queries.STAFF_RESOLUTION_REASONS},
            "undo_s": int(undo_s),
            "undo_window_s": settings.undo_resolve_s,
            "snooze_hours": SNOOZE_HOURS,
            "opened": labels.local_time(alert["opened_at"]),
            "shown": labels.local_time(alert["shown_to_staff_at"]) if alert["shown_to_staff_at"] else None,
            "snoozed_until": labels.local_time(alert["snoozed_until"]) if alert["snoozed_until"] else None,
            "resolved": labels.local_time(alert["resolved_at"]) if alert["resolved_at"] else None,
        },
    )


def _with_query(target: str, key: str, value: str, anchor: str = "") -> str:
    base, _, _fragment = target.partition("#")
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}{key}={value}" + (f"#{anchor}" if anchor else "")


def _uuid_or_none(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError as err:
        raise queries.ActionRefused(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "unknown_recipient", "not a staff id"
        ) from err


@router.post("/ui/alerts/{alert_id}/{action}")
def alert_action_page(
    *,
    request: Request,
    conn: DbConn,
    staff: PageStaff,
    settings: AppSettings,
    alert_id: AlertId,
    action: str,
    comment: Annotated[SafeStr | None, Form(max_length=2000)] = None,
    snooze_hours: Annotated[int | None, Form(ge=1, le=720)] = None,
    to: Annotated[str | None, Form(max_length=64)] = None,
    role: Annotated[str | None, Form(max_length=16)] = None,
    reason: Annotated[str | None, Form(max_length=64)] = None,
    back: Annotated[str | None, Form(max_length=300)] = None,
) -> Response:
    """Every staff action from a page form; redirects back with ``?done=`` (or ``?error=`` to the detail page)."""
    if not staff.clinical:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "clinical data needs the nurse or physician role")
    action = action.replace("-", "_")
    if action not in queries.ACTIONS:
        raise NotFound("action", detail="unknown action")
    detail_url = f"/ui/alerts/{alert_id}"
    # Only same-site relative paths are followed back.
    target = back if back and back.startswith("/ui/") and not back.startswith("//") else "/ui/alerts"
    until = dt.datetime.now(dt.UTC) + dt.timedelta(hours=snooze_hours or 4) if action == "snooze" else None
    # An escalation to a named physician or a role comes from one select ("staff:<id>" / "role:<r>").
    if action == "escalate" and to and to.startswith("role:"):
        role, to = to.removeprefix("role:"), None
    elif to and to.startswith("staff:"):
        to = to.removeprefix("staff:")
    try:
        with conn.transaction():
            row = queries.alert_action(
                conn,
                staff,
                alert_id,
                action,
                comment=(comment or "").strip() or None,
                until=until,
                to=_uuid_or_none(to),
                role=role or None,
                reason=reason or None,
                undo_window_s=settings.undo_resolve_s,
            )
    except queries.ActionRefused as err:
        # The detail page holds every form (the reason, the recipient): go there with the Swedish message.
        return RedirectResponse(_with_query(detail_url, "error", err.code, FORM_ANCHOR.get(action, "")), 303)
    except NotFound:
        return _not_found_page(request, staff)
    audit.record(
        conn,
        staff,
        action,
        f"alert/{alert_id}",
        patient_id=row["patient_id"],
        detail={"page": True} | ({"reason": reason} if reason else {}),
    )
    # After resolving, the detail page carries the "Ångra" button.
    if action == "resolve":
        target = detail_url
    return RedirectResponse(_with_query(target, "done", DONE_CODE[action]), status_code=303)
