"""Gateway and device status. Admins see every kit without patient data; clinical staff see
the kits of their units' patients."""

from __future__ import annotations

from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, HTTPException, Path, status

from clinic_api import audit, enrollment_queries, queries
from clinic_api.auth import Staff
from clinic_api.deps import AdminStaff, CurrentStaff, DbConn
from clinic_api.models import GatewayIn

router = APIRouter(prefix="/gateways", tags=["gateways"])
GatewayId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{2,62}$")]

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


def list_for(conn: psycopg.Connection[Any], staff: Staff) -> list[dict[str, Any]]:
    if staff.clinical:
        rows = queries._rows(conn, _BASE + " WHERE p.unit_id = ANY(%s) ORDER BY g.id", (list(staff.unit_ids),))
    else:
        rows = queries._rows(conn, _BASE + " ORDER BY g.id")
        for r in rows:
            # Admin without a clinical role: which kit is in use, not by whom.
            r["assigned"] = r.pop("patient_id") is not None
            r.pop("pseudonym")
            r.pop("unit_id")
    return rows


def _require_gateway_reader(staff: Staff) -> None:
    if not (staff.clinical or staff.has("admin")):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "needs a clinical or admin role")


@router.get("", summary="Gateways with status (online, last heartbeat, outbox, devices)")
def list_gateways(conn: DbConn, staff: CurrentStaff) -> list[dict[str, Any]]:
    _require_gateway_reader(staff)
    rows = list_for(conn, staff)
    if staff.clinical:
        audit.record(conn, staff, "read", "gateway_list", detail={"patients": [str(r["patient_id"]) for r in rows]})
    return rows


@router.get("/{gateway_id}", summary="One gateway with its devices")
def get_gateway(conn: DbConn, staff: CurrentStaff, gateway_id: GatewayId) -> dict[str, Any]:
    _require_gateway_reader(staff)
    rows = [r for r in list_for(conn, staff) if r["id"] == gateway_id]
    if not rows:
        raise queries.not_found("gateway")
    row = rows[0]
    row["devices"] = queries.devices(conn, gateway_id)
    if staff.clinical:
        audit.record(conn, staff, "read", f"gateway/{gateway_id}", patient_id=row.get("patient_id"))
    return row


@router.post("", status_code=201, summary="Register a gateway kit (admin)")
def create_gateway(conn: DbConn, staff: AdminStaff, body: GatewayIn) -> dict[str, Any]:
    row = enrollment_queries.register_gateway(conn, body)
    audit.record(conn, staff, "create", f"gateway/{body.id}")
    return row
