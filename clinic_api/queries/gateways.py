"""A patient's current gateway kit and a gateway's devices."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from clinic_api.auth import Staff
from clinic_api.errors import NotFound
from clinic_api.queries._db import Row, _row, _rows


def current_gateway(conn: psycopg.Connection[Any], patient_id: uuid.UUID) -> Row | None:
    return _row(
        conn,
        """SELECT g.id, g.serial, g.enrolled_at, g.online, g.last_status, g.last_status_at,
                  lower(ga.valid) AS assigned_from
           FROM gateway_assignment ga JOIN gateway g ON g.id = ga.gateway_id
           WHERE ga.patient_id = %s AND ga.valid @> now()""",
        (patient_id,),
    )


def devices(conn: psycopg.Connection[Any], gateway_id: str) -> list[Row]:
    return _rows(
        conn,
        """SELECT address, model, serial, firmware, kind, battery_pct, first_seen_at, last_seen_at
           FROM device WHERE gateway_id = %s ORDER BY kind NULLS LAST, address""",
        (gateway_id,),
    )


_BASE = """
    SELECT g.id, g.serial, g.enrolled_at, g.online, g.last_status, g.last_status_at, g.created_at,
           (g.credential_hash IS NOT NULL) AS has_credentials,
           ga.patient_id, p.pseudonym, p.unit_id,
           (SELECT count(*) FROM device d WHERE d.gateway_id = g.id) AS device_count,
           (SELECT min(d.battery_pct) FROM device d WHERE d.gateway_id = g.id) AS min_battery_pct
    FROM gateway g
    LEFT JOIN gateway_assignment ga ON ga.gateway_id = g.id AND ga.valid @> now()
    LEFT JOIN patient p ON p.id = ga.patient_id
"""


def gateways_for(conn: psycopg.Connection[Any], staff: Staff) -> list[Row]:
    """Clinical staff: their units' kits with the patient; an admin without a clinical role:
    every kit, only whether it is assigned."""
    if staff.clinical:
        rows = _rows(conn, _BASE + " WHERE p.unit_id = ANY(%s) ORDER BY g.id", (list(staff.unit_ids),))
    else:
        rows = _rows(conn, _BASE + " ORDER BY g.id")
        for r in rows:
            # Admin without a clinical role: which kit is in use, not by whom.
            r["assigned"] = r.pop("patient_id") is not None
            r.pop("pseudonym")
            r.pop("unit_id")
    return rows


def gateway_for(conn: psycopg.Connection[Any], staff: Staff, gateway_id: str) -> Row:
    """One gateway of ``gateways_for`` with its devices; not found when the staff member may not see it."""
    rows = [r for r in gateways_for(conn, staff) if r["id"] == gateway_id]
    if not rows:
        raise NotFound("gateway")
    row = rows[0]
    row["devices"] = devices(conn, gateway_id)
    return row


def gateway_kits(conn: psycopg.Connection[Any]) -> list[Row]:
    """Every registered kit and whether it is assigned now (the admin's kit list)."""
    return _rows(
        conn,
        """SELECT g.id, g.serial, g.created_at, g.enrolled_at,
                  EXISTS (SELECT 1 FROM gateway_assignment ga WHERE ga.gateway_id = g.id AND ga.valid @> now())
                      AS assigned
           FROM gateway g ORDER BY g.id""",
    )


def credential_hashes(conn: psycopg.Connection[Any]) -> list[tuple[str, str | None]]:
    """Every gateway's (id, credential hash or None when not enrolled), by id: what the broker's
    password file is written from (``broker_credentials``)."""
    return [
        (str(gid), None if h is None else str(h))
        for gid, h in conn.execute("SELECT id, credential_hash FROM gateway ORDER BY id").fetchall()
    ]
