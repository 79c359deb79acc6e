"""Administration: care units and staff (admin role; no clinical data here)."""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi import APIRouter, HTTPException, status

from clinic_api import audit, queries
from clinic_api.deps import AdminStaff, CurrentStaff, DbConn
from clinic_api.models import StaffIn, UnitIn

router = APIRouter(tags=["admin"])


@router.get("/me", summary="Who am I: roles and care units")
def me(staff: CurrentStaff) -> dict[str, Any]:
    return {
        "id": staff.id,
        "subject": staff.subject,
        "display_name": staff.display_name,
        "roles": sorted(staff.roles),
        "unit_ids": list(staff.unit_ids),
    }


@router.get("/units", summary="Care units (admin)")
def list_units(conn: DbConn, staff: AdminStaff) -> list[dict[str, Any]]:
    return queries._rows(conn, "SELECT id, code, name, created_at FROM care_unit ORDER BY code")


@router.post("/units", status_code=201, summary="Create a care unit (admin)")
def create_unit(conn: DbConn, staff: AdminStaff, body: UnitIn) -> dict[str, Any]:
    try:
        with conn.transaction():
            row = queries._row(
                conn,
                "INSERT INTO care_unit (code, name) VALUES (%s, %s) RETURNING id, code, name",
                (body.code, body.name),
            )
    except psycopg.errors.UniqueViolation as err:
        raise HTTPException(status.HTTP_409_CONFLICT, "unit code already exists") from err
    assert row is not None
    audit.record(conn, staff, "create", f"care_unit/{row['id']}")
    return row


@router.get("/staff", summary="Staff accounts (admin)")
def list_staff(conn: DbConn, staff: AdminStaff) -> list[dict[str, Any]]:
    return queries._rows(
        conn,
        """SELECT s.id, s.subject, s.display_name, s.roles, s.active,
                  coalesce(array_agg(su.unit_id) FILTER (WHERE su.unit_id IS NOT NULL), '{}') AS unit_ids
           FROM staff s LEFT JOIN staff_unit su ON su.staff_id = s.id GROUP BY s.id ORDER BY s.display_name""",
    )


@router.post("/staff", status_code=201, summary="Create a staff account (admin)")
def create_staff(conn: DbConn, staff: AdminStaff, body: StaffIn) -> dict[str, Any]:
    try:
        with conn.transaction():
            row = queries._row(
                conn,
                "INSERT INTO staff (subject, display_name, roles) VALUES (%s, %s, %s)"
                " RETURNING id, subject, display_name, roles",
                (body.subject, body.display_name, sorted(set(body.roles))),
            )
            assert row is not None
            for unit_id in set(body.unit_ids):
                conn.execute("INSERT INTO staff_unit (staff_id, unit_id) VALUES (%s, %s)", (row["id"], unit_id))
    except psycopg.errors.UniqueViolation as err:
        raise HTTPException(status.HTTP_409_CONFLICT, "a staff account with this subject exists") from err
    except psycopg.errors.ForeignKeyViolation as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "unknown care unit") from err
    row["unit_ids"] = sorted(set(body.unit_ids))
    audit.record(conn, staff, "create", f"staff/{row['id']}")
    return row
