"""Care units and staff accounts: the queries behind ``/api/v1/units``, ``/staff`` and the
admin pages. Callers check the admin role and write the audit row."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from fastapi import HTTPException, status

from clinic_api.errors import NotFound
from clinic_api.models import StaffIn, StaffUpdateIn, UnitIn
from clinic_api.queries._db import Row, _row, _rows

# Error details the pages translate (clinic_api/form_errors.py); the API returns them as they are.
UNIT_EXISTS = "unit code already exists"
STAFF_EXISTS = "a staff account with this subject exists"
UNKNOWN_UNIT = "unknown care unit"
OWN_ADMIN_ROLE = "you cannot remove your own admin role or deactivate yourself"

_STAFF = """SELECT s.id, s.subject, s.display_name, s.roles, s.active,
                  coalesce(array_agg(su.unit_id ORDER BY u.code) FILTER (WHERE su.unit_id IS NOT NULL), '{}')
                      AS unit_ids,
                  coalesce(array_agg(u.code ORDER BY u.code) FILTER (WHERE su.unit_id IS NOT NULL), '{}')
                      AS unit_codes
           FROM staff s LEFT JOIN staff_unit su ON su.staff_id = s.id LEFT JOIN care_unit u ON u.id = su.unit_id"""


def list_units(conn: psycopg.Connection[Any]) -> list[Row]:
    return _rows(conn, "SELECT id, code, name, created_at FROM care_unit ORDER BY code")


def create_unit(conn: psycopg.Connection[Any], body: UnitIn) -> Row:
    try:
        with conn.transaction():
            row = _row(
                conn,
                "INSERT INTO care_unit (code, name) VALUES (%s, %s) RETURNING id, code, name",
                (body.code, body.name),
            )
    except psycopg.errors.UniqueViolation as err:
        raise HTTPException(status.HTTP_409_CONFLICT, UNIT_EXISTS) from err
    assert row is not None
    return row


def list_staff(conn: psycopg.Connection[Any]) -> list[Row]:
    return _rows(conn, _STAFF + " GROUP BY s.id ORDER BY s.display_name")


def get_staff(conn: psycopg.Connection[Any], staff_id: uuid.UUID) -> Row:
    row = _row(conn, _STAFF + " WHERE s.id = %s GROUP BY s.id", (staff_id,))
    if row is None:
        raise NotFound("staff")
    return row


def _set_units(conn: psycopg.Connection[Any], staff_id: uuid.UUID, unit_ids: list[uuid.UUID]) -> None:
    conn.execute("DELETE FROM staff_unit WHERE staff_id = %s", (staff_id,))
    for unit_id in sorted(set(unit_ids)):
        conn.execute("INSERT INTO staff_unit (staff_id, unit_id) VALUES (%s, %s)", (staff_id, unit_id))


def create_staff(conn: psycopg.Connection[Any], body: StaffIn) -> Row:
    try:
        with conn.transaction():
            row = _row(
                conn,
                "INSERT INTO staff (subject, display_name, roles) VALUES (%s, %s, %s)"
                " RETURNING id, subject, display_name, roles",
                (body.subject, body.display_name, sorted(set(body.roles))),
            )
            assert row is not None
            _set_units(conn, row["id"], body.unit_ids)
    except psycopg.errors.UniqueViolation as err:
        raise HTTPException(status.HTTP_409_CONFLICT, STAFF_EXISTS) from err
    except psycopg.errors.ForeignKeyViolation as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, UNKNOWN_UNIT) from err
    row["unit_ids"] = sorted(set(body.unit_ids))
    return row


def update_staff(conn: psycopg.Connection[Any], by: uuid.UUID, staff_id: uuid.UUID, body: StaffUpdateIn) -> Row:
    """Replace a staff member's roles and care units (and optionally ``active``).

    An admin cannot take away their own admin role or deactivate themselves, so a region
    is never left without anyone who can give access back.
    """
    before = get_staff(conn, staff_id)
    if staff_id == by and ("admin" not in body.roles or body.active is False):
        raise HTTPException(status.HTTP_409_CONFLICT, OWN_ADMIN_ROLE)
    try:
        with conn.transaction():
            conn.execute(
                "UPDATE staff SET roles = %s, active = coalesce(%s, active) WHERE id = %s",
                (sorted(set(body.roles)), body.active, staff_id),
            )
            _set_units(conn, staff_id, body.unit_ids)
    except psycopg.errors.ForeignKeyViolation as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, UNKNOWN_UNIT) from err
    after = get_staff(conn, staff_id)
    after["previous"] = {"roles": before["roles"], "unit_ids": before["unit_ids"], "active": before["active"]}
    return after


def admin_counts(conn: psycopg.Connection[Any], unit_ids: list[uuid.UUID]) -> dict[str, int]:
    """The admin home page's figures; patients only of the admin's own units."""
    row = _row(
        conn,
        """SELECT (SELECT count(*) FROM care_unit) AS units, (SELECT count(*) FROM staff WHERE active) AS staff,
                  (SELECT count(*) FROM patient WHERE active AND unit_id = ANY(%s)) AS patients,
                  (SELECT count(*) FROM gateway) AS gateways""",
        (unit_ids,),
    )
    assert row is not None
    return row


def active_staff(conn: psycopg.Connection[Any]) -> list[Row]:
    """Active accounts by name (the development issuer's sign-in list)."""
    return _rows(conn, "SELECT subject, display_name, roles FROM staff WHERE active ORDER BY display_name")


def active_staff_name(conn: psycopg.Connection[Any], subject: str) -> str | None:
    row = _row(conn, "SELECT display_name FROM staff WHERE subject = %s AND active", (subject,))
    return None if row is None else str(row["display_name"])


def staff_names(conn: psycopg.Connection[Any], ids: set[str]) -> dict[str, str]:
    """Display names by staff id (as text); ids that are not UUIDs are skipped."""
    valid = []
    for i in ids:
        try:
            valid.append(uuid.UUID(i))
        except ValueError:
            continue
    if not valid:
        return {}
    return {
        str(r["id"]): r["display_name"]
        for r in _rows(conn, "SELECT id, display_name FROM staff WHERE id = ANY(%s)", (valid,))
    }


def staff_change_detail(row: Row, previous: Row) -> dict[str, Any]:
    """The audit detail of a staff change: the account as it is now and as it was."""

    def state(r: Row) -> dict[str, Any]:
        return {"roles": sorted(r["roles"]), "unit_ids": [str(u) for u in r["unit_ids"]], "active": r["active"]}

    return {**state(row), "previous": state(previous)}
