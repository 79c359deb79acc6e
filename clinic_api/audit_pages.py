"""The auditor's pages (Swedish): search the audit log and export the search as CSV.

Both call ``clinic_api.audit.search`` like ``GET /api/v1/audit`` and write their own audit
row (``search`` or ``export`` of ``audit_log``, with the filters), so looking at the log
leaves a trace in it. Form times are Stockholm wall-clock; the database compares UTC.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import psycopg
from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, Response

from clinic_api import audit, labels, queries
from clinic_api.auth import Staff
from clinic_api.deps import DbConn, PageStaff
from clinic_api.pages import templates

router = APIRouter(prefix="/ui/audit", include_in_schema=False)
PAGE_SIZE = 50
# One export is one file an auditor can open in a spreadsheet; narrow the search for more.
EXPORT_MAX = 10_000
_ACTION = re.compile(r"^[a-z_]{1,64}$")
_PSEUDONYM = re.compile(r"^P-[A-Z0-9]{2,16}$")
CSV_HEADER = (
    "Tid (Europe/Stockholm)",
    "Personal",
    "Inloggnings-id",
    "Händelse",
    "Åtgärdskod",
    "Resurs",
    "Patient (pseudonym)",
    "Patient-id",
    "Adress",
    "Orsak",
    "Detaljer",
)


@dataclass
class Search:
    """The form as typed (shown back) and the filter it means, or Swedish errors."""

    form: dict[str, str]
    filter: audit.AuditFilter = field(default_factory=audit.AuditFilter)
    errors: dict[str, str] = field(default_factory=dict)
    page: int = 1


def _local_input(value: str, *, end: bool) -> dt.datetime | None:
    """A ``datetime-local`` or date input in Stockholm time; an end date covers its whole day
    and an end minute its whole minute (the form says "till och med")."""
    value = value.strip()
    if not value:
        return None
    if len(value) == 10:
        t = dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), tzinfo=labels.TZ)
        return t + dt.timedelta(days=1) if end else t
    t = dt.datetime.fromisoformat(value).replace(tzinfo=labels.TZ, second=0, microsecond=0)
    return t + dt.timedelta(minutes=1) if end else t


def parse(conn: psycopg.Connection[Any], params: Mapping[str, str]) -> Search:
    form = {k: params.get(k, "").strip() for k in ("staff", "patient", "action", "from", "to")}
    s = Search(form=form)
    staff_id = patient_id = None
    start = end = None
    if form["staff"]:
        try:
            staff_id = uuid.UUID(form["staff"])
        except ValueError:
            s.errors["staff"] = "Välj en person i listan."
    if form["patient"]:
        pseudonym = form["patient"].upper()
        patient_id = audit.patient_by_pseudonym(conn, pseudonym) if _PSEUDONYM.match(pseudonym) else None
        if patient_id is None:
            s.errors["patient"] = "Ingen patient har den pseudonymen (t.ex. P-DEMO0001)."
    if form["action"] and not _ACTION.match(form["action"]):
        s.errors["action"] = "Välj en händelse i listan."
    try:
        start = _local_input(form["from"], end=False)
    except ValueError:
        s.errors["from"] = "Skriv tiden som ÅÅÅÅ-MM-DD TT:MM."
    try:
        end = _local_input(form["to"], end=True)
    except ValueError:
        s.errors["to"] = "Skriv tiden som ÅÅÅÅ-MM-DD TT:MM."
    if start and end and start >= end:
        s.errors["to"] = "Sluttiden måste vara efter starttiden."
    try:
        s.page = max(1, min(int(params.get("page", "1")), 100_000))
    except ValueError:
        s.page = 1
    s.filter = audit.AuditFilter(
        patient_id=patient_id, staff_id=staff_id, action=form["action"] or None, start=start, end=end
    )
    return s


def _forbidden(request: Request, staff: Staff) -> Response:
    return templates.TemplateResponse(
        request,
        "forbidden.html",
        {"me": staff, "message": "Granskningsloggen kräver rollen Granskare."},
        status_code=status.HTTP_403_FORBIDDEN,
    )


def local_seconds(value: dt.datetime) -> str:
    return value.astimezone(labels.TZ).strftime("%Y-%m-%d %H:%M:%S")


def detail_text(detail: Mapping[str, Any]) -> str:
    """A short Swedish reading of ``detail`` (a list read names many patients: counted, not listed)."""
    parts = []
    for key, value in detail.items():
        if key == "page" or value is None:
            continue
        if key == "patients" and isinstance(value, list):
            parts.append(f"{len(value)} patienter i listan")
        else:
            parts.append(f"{key}: {json.dumps(value, ensure_ascii=False, default=str)}")
    return "; ".join(parts)


def _query_string(form: Mapping[str, str], **extra: str) -> str:
    return urlencode({k: v for k, v in {**form, **extra}.items() if v})


@router.get("", response_class=HTMLResponse)
def audit_page(request: Request, conn: DbConn, staff: PageStaff) -> Response:
    if not staff.has("auditor"):
        return _forbidden(request, staff)
    s = parse(conn, request.query_params)
    rows: list[dict[str, Any]] = []
    more = False
    if not s.errors:
        rows = audit.search(conn, s.filter, limit=PAGE_SIZE + 1, offset=(s.page - 1) * PAGE_SIZE)
        more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        audit.record(conn, staff, "search", "audit_log", detail={**s.filter.detail(), "page_no": s.page, "page": True})
    return templates.TemplateResponse(
        request,
        "audit.html",
        {
            "me": staff,
            "s": s,
            "rows": rows,
            "more": more,
            "staff_list": queries.admin.list_staff(conn),
            "actions": labels.AUDIT_ACTION,
            "qs": lambda **kw: _query_string(s.form, **kw),
            "local_seconds": local_seconds,
            "detail_text": detail_text,
        },
        status_code=422 if s.errors else 200,
    )


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    # A cell starting with = + - @ would be run as a formula by a spreadsheet.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(rows: list[dict[str, Any]]) -> str:
    # Semicolons: what a Swedish Excel expects (the comma is the decimal sign).
    out = io.StringIO()
    w = csv.writer(out, delimiter=";", lineterminator="\r\n")
    w.writerow(CSV_HEADER)
    for r in rows:
        w.writerow(
            [
                _cell(v)
                for v in (
                    local_seconds(r["at"]),
                    r["staff_name"],
                    r["subject"],
                    labels.label(labels.AUDIT_ACTION, r["action"]),
                    r["action"],
                    r["resource"],
                    r["pseudonym"],
                    r["patient_id"],
                    r["remote_addr"],
                    r["reason"],
                    json.dumps(r["detail"], ensure_ascii=False, default=str),
                )
            ]
        )
    return out.getvalue()


@router.get("/export.csv")
def export_csv(request: Request, conn: DbConn, staff: PageStaff) -> Response:
    if not staff.has("auditor"):
        return _forbidden(request, staff)
    s = parse(conn, request.query_params)
    if s.errors:
        return Response(
            "Sökningen är ogiltig: " + " ".join(s.errors.values()),
            status_code=422,
            media_type="text/plain; charset=utf-8",
        )
    rows = audit.search(conn, s.filter, limit=EXPORT_MAX + 1)
    truncated = len(rows) > EXPORT_MAX
    rows = rows[:EXPORT_MAX]
    audit.record(
        conn,
        staff,
        "export",
        "audit_log",
        detail={**s.filter.detail(), "rows": len(rows), "truncated": truncated, "page": True},
    )
    stamp = dt.datetime.now(labels.TZ).strftime("%Y%m%d-%H%M")
    # UTF-8 with a byte-order mark, so Excel reads å, ä and ö right.
    body = "\ufeff" + to_csv(rows)
    return Response(
        body.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="granskningslogg-{stamp}.csv"',
            "Cache-Control": "no-store",
            "X-Export-Truncated": "1" if truncated else "0",
        },
    )
