"""Gateway and device status. Admins see every kit without patient data; clinical staff see
the kits of their units' patients."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, status

from clinic_api import audit, queries
from clinic_api.auth import Staff
from clinic_api.deps import AdminStaff, CurrentStaff, DbConn
from clinic_api.models import GatewayIn
from clinic_api.schemas import GatewayCreated, GatewayDetail, GatewayListItem, documented

router = APIRouter(prefix="/gateways", tags=["gateways"])
GatewayId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{2,62}$")]


def _require_gateway_reader(staff: Staff) -> None:
    if not (staff.clinical or staff.has("admin")):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "needs a clinical or admin role")


@router.get(
    "", **documented(list[GatewayListItem]), summary="Gateways with status (online, last heartbeat, outbox, devices)"
)
def list_gateways(conn: DbConn, staff: CurrentStaff) -> list[dict[str, Any]]:
    _require_gateway_reader(staff)
    rows = queries.gateways_for(conn, staff)
    if staff.clinical:
        audit.record(conn, staff, "read", "gateway_list", detail={"patients": [str(r["patient_id"]) for r in rows]})
    return rows


@router.get("/{gateway_id}", **documented(GatewayDetail), summary="One gateway with its devices")
def get_gateway(conn: DbConn, staff: CurrentStaff, gateway_id: GatewayId) -> dict[str, Any]:
    _require_gateway_reader(staff)
    row = queries.gateway_for(conn, staff, gateway_id)
    if staff.clinical:
        audit.record(conn, staff, "read", f"gateway/{gateway_id}", patient_id=row.get("patient_id"))
    return row


@router.post("", **documented(GatewayCreated, 201), status_code=201, summary="Register a gateway kit (admin)")
def create_gateway(conn: DbConn, staff: AdminStaff, body: GatewayIn) -> dict[str, Any]:
    row = queries.enrollment.register_gateway(conn, body)
    audit.record(conn, staff, "create", f"gateway/{body.id}")
    return row
