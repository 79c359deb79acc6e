"""Threshold replay requests of a care unit: queue one, list them, read one with its result.

The alerting service runs what is queued here (``replay_request``, migration 0003) and
writes the result back; clinic_api never runs the engine itself. Both the API
(``/units/{id}/replays``, ``/replays/{id}``) and the analytics page call these functions;
the caller writes the audit row.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from fastapi import HTTPException, status
from psycopg.types.json import Jsonb

from clinic_api.auth import Staff
from clinic_api.errors import NotFound
from clinic_api.models import ReplayIn
from clinic_api.queries._db import Row, _row, _rows

LIST_LIMIT = 20
# Each request costs the alerting service up to minutes of work; a unit cannot pile them up.
MAX_PENDING_PER_UNIT = 5

_COLUMNS = """r.id, r.unit_id, r.requested_at, s.display_name AS requested_by, r.days, r.condition, r.proposal,
              r.status, r.started_at, r.finished_at, r.error"""


def _unit(conn: psycopg.Connection[Any], staff: Staff, unit_id: uuid.UUID) -> Row:
    """One of the staff member's units; 404 for another or an unknown one (as alert-burden)."""
    unit = _row(
        conn, "SELECT id, code, name FROM care_unit WHERE id = %s AND id = ANY(%s)", (unit_id, list(staff.unit_ids))
    )
    if unit is None:
        raise NotFound("care unit")
    return unit


def create(conn: psycopg.Connection[Any], staff: Staff, unit_id: uuid.UUID, body: ReplayIn) -> Row:
    _unit(conn, staff, unit_id)
    # Serialise concurrent requests of one unit so the pending limit holds.
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('replay_request'), hashtext(%s))", (str(unit_id),))
    pending = _row(
        conn,
        "SELECT count(*) AS n FROM replay_request WHERE unit_id = %s AND status IN ('queued', 'running')",
        (unit_id,),
    )
    if pending is not None and pending["n"] >= MAX_PENDING_PER_UNIT:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"the unit already has {MAX_PENDING_PER_UNIT} replays queued or running; wait for one to finish",
        )
    row = _row(
        conn,
        """INSERT INTO replay_request (unit_id, requested_by, days, condition, proposal)
           VALUES (%s, %s, %s, %s, %s) RETURNING id, unit_id, requested_at, status""",
        (unit_id, staff.id, body.days, body.condition.value if body.condition else None, Jsonb(body.proposal)),
    )
    assert row is not None
    return row


def list_for_unit(conn: psycopg.Connection[Any], staff: Staff, unit_id: uuid.UUID) -> list[Row]:
    """The unit's latest requests, newest first, with caught/missed totals of finished ones."""
    _unit(conn, staff, unit_id)
    return _rows(
        conn,
        f"""SELECT {_COLUMNS}, (r.result->>'caught')::int AS caught, (r.result->>'missed')::int AS missed
            FROM replay_request r JOIN staff s ON s.id = r.requested_by
            WHERE r.unit_id = %s ORDER BY r.requested_at DESC, r.id DESC LIMIT %s""",
        (unit_id, LIST_LIMIT),
    )


def get(conn: psycopg.Connection[Any], staff: Staff, replay_id: int) -> Row:
    """One request with its result; 404 unless it belongs to one of the staff member's units."""
    row = _row(
        conn,
        f"""SELECT {_COLUMNS}, r.result, u.code AS unit_code, u.name AS unit_name
            FROM replay_request r JOIN staff s ON s.id = r.requested_by JOIN care_unit u ON u.id = r.unit_id
            WHERE r.id = %s AND r.unit_id = ANY(%s)""",
        (replay_id, list(staff.unit_ids)),
    )
    if row is None:
        raise NotFound("replay")
    return row


def patients_named(conn: psycopg.Connection[Any], row: Row) -> list[str]:
    """Ids of the unit's patients a result names (by pseudonym), for the audit row's detail."""
    pseudonyms = sorted({p["pseudonym"] for p in (row.get("result") or {}).get("past", [])})
    if not pseudonyms:
        return []
    found = conn.execute(
        "SELECT id::text FROM patient WHERE unit_id = %s AND pseudonym = ANY(%s) ORDER BY 1",
        (row["unit_id"], pseudonyms),
    ).fetchall()
    return [r[0] for r in found]
