"""Staff rows as sign-in and the command line need them: the staff member a token names, and
the first admin of a fresh installation (``bootstrap.create_admin``). The admin pages' and
the API's staff management is in ``queries.admin``."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from clinic_api.auth import Staff
from clinic_api.queries._db import Row, _row


def active_by_subject(conn: psycopg.Connection[Any], subject: str) -> Row | None:
    """The active staff row of ``subject`` with its roles and care-unit ids (``unit_ids``)."""
    return _row(
        conn,
        """
        SELECT s.id, s.subject, s.display_name, s.roles,
               coalesce(array_agg(su.unit_id) FILTER (WHERE su.unit_id IS NOT NULL), '{}') AS unit_ids
        FROM staff s LEFT JOIN staff_unit su ON su.staff_id = s.id
        WHERE s.subject = %s AND s.active
        GROUP BY s.id
        """,
        (subject,),
    )


def load_staff(conn: psycopg.Connection[Any], subject: str, remote_addr: str | None) -> Staff | None:
    """The signed-in staff member: roles and care units from the database, never the token."""
    row = active_by_subject(conn, subject)
    if row is None:
        return None
    return Staff(
        id=row["id"],
        subject=row["subject"],
        display_name=row["display_name"],
        roles=frozenset(row["roles"]),
        unit_ids=tuple(row["unit_ids"]),
        remote_addr=remote_addr,
    )


def unit_id_by_code(conn: psycopg.Connection[Any], code: str) -> uuid.UUID | None:
    row = conn.execute("SELECT id FROM care_unit WHERE code = %s", (code,)).fetchone()
    return None if row is None else uuid.UUID(str(row[0]))


def create_unit(conn: psycopg.Connection[Any], code: str, name: str) -> uuid.UUID:
    row = conn.execute("INSERT INTO care_unit (code, name) VALUES (%s, %s) RETURNING id", (code, name)).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def by_subject_for_update(conn: psycopg.Connection[Any], subject: str) -> Row | None:
    """Any staff row of ``subject`` (active or not), locked until the transaction ends."""
    return _row(conn, "SELECT id, display_name, roles, active FROM staff WHERE subject = %s FOR UPDATE", (subject,))


def insert_admin(conn: psycopg.Connection[Any], subject: str, name: str) -> tuple[uuid.UUID, list[str]]:
    """A new staff row with the admin role only; returns (id, roles)."""
    row = conn.execute(
        "INSERT INTO staff (subject, display_name, roles) VALUES (%s, %s, ARRAY['admin']) RETURNING id, roles",
        (subject, name),
    ).fetchone()
    assert row is not None
    return row[0], list(row[1])


def promote_admin(conn: psycopg.Connection[Any], staff_id: uuid.UUID, name: str) -> list[str]:
    """Rename, reactivate and add the admin role (kept once); returns the roles."""
    row = conn.execute(
        """UPDATE staff SET display_name = %s, active = true,
                  roles = CASE WHEN 'admin' = ANY(roles) THEN roles ELSE roles || ARRAY['admin'] END
           WHERE id = %s RETURNING roles""",
        (name, staff_id),
    ).fetchone()
    assert row is not None
    return list(row[0])


def add_to_unit(conn: psycopg.Connection[Any], staff_id: uuid.UUID, unit_id: uuid.UUID) -> None:
    conn.execute(
        "INSERT INTO staff_unit (staff_id, unit_id) VALUES (%s, %s) ON CONFLICT DO NOTHING", (staff_id, unit_id)
    )
