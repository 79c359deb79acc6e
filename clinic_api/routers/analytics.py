"""Unit-level analytics for clinical staff: the alert burden of a care unit."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query

from clinic_api import audit
from clinic_api.deps import ClinicalStaff, DbConn
from clinic_api.queries import analytics
from clinic_api.schemas import AlertBurden, documented

router = APIRouter(prefix="/units", tags=["analytics"])

Days = Annotated[
    int,
    Query(ge=1, le=analytics.MAX_DAYS, description=f"length of the window ending now, 1..{analytics.MAX_DAYS} days"),
]


@router.get(
    "/{unit_id}/alert-burden",
    **documented(AlertBurden),
    summary="Alert burden of one of my units: alerts per event type and rule",
)
def alert_burden(conn: DbConn, staff: ClinicalStaff, unit_id: uuid.UUID, days: Days = 30) -> dict[str, Any]:
    out = analytics.alert_burden(conn, staff, unit_id, days)
    # Aggregates only, no patient is named; the read of the unit's figures is still recorded.
    audit.record(conn, staff, "read", f"care_unit/{unit_id}/alert-burden", detail={"days": days})
    return out
