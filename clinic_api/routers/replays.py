"""Threshold replay for clinical staff: queue proposed thresholds for a unit, read the outcome.

The alerting service runs the request (its ``replay_worker``) and writes the result into
``replay_request``; these routes only queue and read.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, status

from clinic_api import audit
from clinic_api.deps import ClinicalStaff, DbConn
from clinic_api.models import ReplayIn
from clinic_api.queries import replays
from clinic_api.schemas import ReplayListItem, ReplayOut, ReplayQueued, documented

router = APIRouter(tags=["replays"])

ReplayId = Annotated[int, Path(ge=1, le=2**62)]


@router.post(
    "/units/{unit_id}/replays",
    **documented(ReplayQueued, 202),
    status_code=status.HTTP_202_ACCEPTED,
    summary="Queue a replay of proposed thresholds over the unit's last N days (run by the alerting service)",
)
def create_replay(conn: DbConn, staff: ClinicalStaff, unit_id: uuid.UUID, body: ReplayIn) -> dict[str, Any]:
    row = replays.create(conn, staff, unit_id, body)
    audit.record(
        conn,
        staff,
        "create",
        f"care_unit/{unit_id}/replays",
        detail={"replay_id": row["id"], "days": body.days, "condition": body.condition, "proposal": body.proposal},
    )
    return row


@router.get(
    "/units/{unit_id}/replays",
    **documented(list[ReplayListItem]),
    summary=f"The unit's latest {replays.LIST_LIMIT} replay requests",
)
def list_replays(conn: DbConn, staff: ClinicalStaff, unit_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = replays.list_for_unit(conn, staff, unit_id)
    audit.record(conn, staff, "read", f"care_unit/{unit_id}/replays")
    return rows


@router.get("/replays/{replay_id}", **documented(ReplayOut), summary="One replay request with its result once done")
def get_replay(conn: DbConn, staff: ClinicalStaff, replay_id: ReplayId) -> dict[str, Any]:
    row = replays.get(conn, staff, replay_id)
    # The result names past alerts' patients (by pseudonym): the read is audited under their ids.
    audit.record(conn, staff, "read", f"replay/{replay_id}", detail={"patients": replays.patients_named(conn, row)})
    return row
