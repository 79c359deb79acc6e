"""Measurement receipts: "Blodtrycket 142/88 är mottaget." within seconds of storage.

Called on ingest's notification (the payload names patients only), before the evaluation,
so a receipt is queued ahead of any "measure again" the same reading causes. Per patient
it looks at the spot readings ingested since the patient's last receipt (at most
``WINDOW`` back) and queues, for the patient's current gateway:

* one receipt per kind for the newest reading of that kind measured within ``max_age``;
* one summary ("3 mätningar har kommit fram.") for the readings older than that: a
  backlog upload (a gateway back online) is one message, not a stream of stale values.

CGM gets no receipts (a reading every 5 minutes would be noise); rejected readings get
none (their value is not one to confirm). Receipts expire after ``ttl``. Concurrent
alerting processes take a per-patient advisory lock, so each reading is receipted once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from alerting import metrics

log = logging.getLogger(__name__)

# Readings ingested longer ago than this are never receipted (the notification is seconds old).
WINDOW = timedelta(minutes=10)
# Readings measured longer ago than this are not looked at at all (bounds the index scan).
OLDEST = timedelta(days=30)

# kind -> (component shown, Swedish subject, the adjective's ending: "mottagen"/"mottaget")
_SHOWN: dict[str, tuple[str, str, str]] = {
    "blood_pressure": ("systolic", "Blodtrycket", "mottaget"),
    "weight": ("weight", "Vikten", "mottagen"),
    "body_composition": ("weight", "Vikten", "mottagen"),
    "glucose_capillary": ("glucose", "Blodsockret", "mottaget"),
    "spo2": ("spo2", "Syremättnaden", "mottagen"),
    "temperature": ("temperature", "Temperaturen", "mottagen"),
    "spirometry": ("pef", "PEF-värdet", "mottaget"),
}
SYMPTOMS_TEXT = "Dina svar om hur du mår är mottagna."
_COMPONENTS = sorted({c for c, _, _ in _SHOWN.values()} | {"diastolic"})

READINGS_SQL = """
SELECT o.patient_id::text, o.reading_id::text, o.kind, o.component, o.value, o.censored, o.measured_at
FROM unnest(%(ids)s::uuid[]) AS p(id)
CROSS JOIN LATERAL (
    SELECT greatest(max(m.created_at), now() - %(window)s) AS since
    FROM patient_message m WHERE m.patient_id = p.id AND m.level = 'receipt'
) last
JOIN observation o ON o.patient_id = p.id
WHERE o.measured_at > now() - %(oldest)s
  AND o.ingested_at > last.since
  AND o.status <> 'rejected'
  AND (o.component = ANY(%(components)s) OR o.kind = 'symptoms')
  AND o.kind <> 'glucose_cgm'
"""


def _num(v: float, decimals: int) -> str:
    return f"{v:.{decimals}f}".replace(".", ",")


@dataclass
class _Reading:
    kind: str
    measured_at: datetime
    values: dict[str, float | None]
    censored: dict[str, str | None]


def receipt_text(kind: str, values: dict[str, float | None], censored: dict[str, str | None]) -> str | None:
    """The Swedish receipt of one reading, or None when it has nothing to show."""
    if kind == "symptoms":
        return SYMPTOMS_TEXT
    shown = _SHOWN.get(kind)
    if shown is None:
        return None
    component, subject, received = shown
    v = values.get(component)
    if kind == "blood_pressure":
        dia = values.get("diastolic")
        if v is None or dia is None:
            return None
        return f"{subject} {round(v)}/{round(dia)} är {received}."
    cens = censored.get(component)
    if v is None:
        if cens is None:
            return None
        # A meter's HI/LO has no number: say which end it was.
        end = "över mätområdet" if cens == "high" else "under mätområdet"
        return f"{subject} ({end}) är {received}."
    text = {
        "weight": f"{_num(v, 1)} kg",
        "body_composition": f"{_num(v, 1)} kg",
        "glucose_capillary": _num(v, 1),
        "spo2": f"{round(v)} %",
        "temperature": f"{_num(v, 1)} °C",
        "spirometry": f"{round(v)} l/min",
    }[kind]
    return f"{subject} {text} är {received}."


def backlog_text(n: int) -> str:
    return "1 mätning har kommit fram." if n == 1 else f"{n} mätningar har kommit fram."


def queue_receipts(
    conn: psycopg.Connection[Any],
    patient_ids: Sequence[str],
    *,
    max_age: timedelta = timedelta(hours=1),
    ttl: timedelta = timedelta(minutes=10),
) -> int:
    """Queue the receipts for readings just stored for these patients; returns how many."""
    if not patient_ids:
        return 0
    ids = sorted(set(patient_ids))
    queued = 0
    with conn.transaction():
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('receipt:' || p, 0)) "
            "FROM unnest(%s::text[]) AS p ORDER BY p",
            (ids,),
        )
        rows = conn.execute(
            READINGS_SQL, {"ids": ids, "window": WINDOW, "oldest": OLDEST, "components": _COMPONENTS}
        ).fetchall()
        if not rows:
            return 0
        now_row = conn.execute("SELECT now()").fetchone()
        assert now_row is not None
        now: datetime = now_row[0]
        readings: dict[str, dict[str, _Reading]] = {}
        for pid, rid, kind, comp, value, cens, at in rows:
            r = readings.setdefault(pid, {}).setdefault(rid, _Reading(kind, at, {}, {}))
            r.values[comp] = value
            r.censored[comp] = cens
        gateways = dict(
            conn.execute(
                "SELECT patient_id::text, gateway_id FROM gateway_assignment "
                "WHERE patient_id = ANY(%s::uuid[]) AND valid @> now()",
                (list(readings),),
            ).fetchall()
        )
        messages: list[tuple[str, str, str | None, str]] = []
        for pid, by_id in readings.items():
            gw = gateways.get(pid)
            if gw is None:
                continue  # nowhere to show it
            newest: dict[str, tuple[_Reading, str]] = {}
            old = 0
            for r in by_id.values():
                text = receipt_text(r.kind, r.values, r.censored)
                if text is None:
                    continue
                if now - r.measured_at > max_age:
                    old += 1
                elif r.kind not in newest or r.measured_at > newest[r.kind][0].measured_at:
                    newest[r.kind] = (r, text)
            if old:
                messages.append((pid, gw, None, backlog_text(old)))
            for kind in sorted(newest):
                messages.append((pid, gw, kind, newest[kind][1]))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO patient_message (patient_id, gateway_id, level, kind, message_sv, expires_at) "
                "VALUES (%s, %s, 'receipt', %s, %s, now() + %s)",
                [(pid, gw, kind, text, ttl) for pid, gw, kind, text in messages],
            )
        queued = len(messages)
    for _, _, kind, _ in messages:
        metrics.RECEIPTS.labels(kind or "backlog").inc()
    if queued:
        log.info("receipts queued count=%d patients=%d", queued, len(readings))
    return queued
