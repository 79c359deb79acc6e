"""The patient's monthly letter (PDF) for the care unit to print, send or hand out."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status

from clinic_api import audit, letter_pdf, patient_letter, queries
from clinic_api.deps import ClinicalStaff, DbConn
from clinic_api.patient_letter import Month, MonthError

router = APIRouter(prefix="/patients", tags=["letters"])
log = logging.getLogger(__name__)

MonthParam = Annotated[
    str | None,
    Query(description="YYYY-MM; default the last complete month (Europe/Stockholm)", max_length=20),
]


def month_param(month: str | None, now: dt.datetime) -> Month:
    """The requested month, or the last complete one; 422 with the reason when malformed."""
    if month is None:
        return Month.last_complete(now)
    try:
        return Month.parse(month, now=now)
    except MonthError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from err


@router.get(
    "/{patient_id}/letter.pdf",
    summary="The patient's monthly letter: values and trends in plain Swedish, A4 PDF",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}, 503: {"description": "letter font not installed"}},
)
def monthly_letter(conn: DbConn, staff: ClinicalStaff, patient_id: uuid.UUID, month: MonthParam = None) -> Response:
    now = dt.datetime.now(dt.UTC)
    m = month_param(month, now)
    patient = queries.patient_for(conn, staff, patient_id)
    summary = patient_letter.load(conn, patient, m, now)
    try:
        pdf = letter_pdf.render(summary, printed_at=now)
    except letter_pdf.FontMissingError as err:
        log.error("monthly letter unavailable: %s", err)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the letter's font is not installed on the server (Debian package fonts-dejavu-core)",
        ) from err
    audit.record(
        conn,
        staff,
        "export",
        f"patient/{patient_id}/letter",
        patient_id=patient_id,
        detail={"month": str(m), "format": "pdf", "kinds": [k.kind for k in summary.kinds]},
    )
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="manadsbrev-{patient["pseudonym"]}-{m}.pdf"',
            "Cache-Control": "no-store",
        },
    )
