"""Administration: care units and staff (admin role; no clinical data here)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from clinic_api import audit, queries
from clinic_api.deps import AdminStaff, CurrentStaff, DbConn
from clinic_api.models import StaffIn, StaffUpdateIn, UnitIn
from clinic_api.schemas import Me, StaffCreated, StaffOut, UnitOut, documented

router = APIRouter(tags=["admin"])


@router.get("/me", **documented(Me), summary="Who am I: roles and care units")
def me(staff: CurrentStaff) -> dict[str, Any]:
    return {
        "id": staff.id,
        "subject": staff.subject,
        "display_name": staff.display_name,
        "roles": sorted(staff.roles),
        "unit_ids": list(staff.unit_ids),
    }


@router.get("/units", **documented(list[UnitOut]), summary="Care units (admin)")
def list_units(conn: DbConn, staff: AdminStaff) -> list[dict[str, Any]]:
    return queries.admin.list_units(conn)


@router.post("/units", **documented(UnitOut, 201), status_code=201, summary="Create a care unit (admin)")
def create_unit(conn: DbConn, staff: AdminStaff, body: UnitIn) -> dict[str, Any]:
    row = queries.admin.create_unit(conn, body)
    audit.record(conn, staff, "create", f"care_unit/{row['id']}")
    return row


@router.get("/staff", **documented(list[StaffOut]), summary="Staff accounts (admin)")
def list_staff(conn: DbConn, staff: AdminStaff) -> list[dict[str, Any]]:
    return queries.admin.list_staff(conn)


@router.post("/staff", **documented(StaffCreated, 201), status_code=201, summary="Create a staff account (admin)")
def create_staff(conn: DbConn, staff: AdminStaff, body: StaffIn) -> dict[str, Any]:
    row = queries.admin.create_staff(conn, body)
    audit.record(conn, staff, "create", f"staff/{row['id']}")
    return row


@router.patch(
    "/staff/{staff_id}",
    **documented(StaffOut),
    summary="Change a staff account's roles, care units or active flag (admin)",
)
def update_staff(conn: DbConn, staff: AdminStaff, staff_id: uuid.UUID, body: StaffUpdateIn) -> dict[str, Any]:
    row = queries.admin.update_staff(conn, staff.id, staff_id, body)
    previous = row.pop("previous")
    audit.record(
        conn,
        staff,
        "update",
        f"staff/{staff_id}",
        detail=queries.admin.staff_change_detail(row, previous),
    )
    return row
