"""Enrollment: create a patient, assign a gateway kit, issue a one-time code, and the
gateway's code-for-credentials exchange (device_profiles.messages)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status

from clinic_api import audit, queries, secrets_util
from clinic_api.deps import AppSettings, DbConn, EnrollerStaff
from clinic_api.models import EnrollmentCodeOut, GatewayAssignIn, PatientIn, no_nul
from clinic_api.schemas import GatewayAssigned, GatewayAssignmentEnded, PatientCreated, documented
from device_profiles.messages import EnrollmentRequest, EnrollmentResponse

log = logging.getLogger(__name__)
router = APIRouter(tags=["enrollment"])


@router.post(
    "/patients",
    **documented(PatientCreated, 201),
    status_code=201,
    summary="Enrol a patient (personnummer stored once, separately)",
)
def create_patient(conn: DbConn, staff: EnrollerStaff, body: PatientIn) -> dict[str, Any]:
    patient = queries.enrollment.create_patient(conn, staff, body)
    audit.record(conn, staff, "create", "patient", patient_id=patient["id"])
    log.info("patient enrolled pseudonym=%s", patient["pseudonym"])
    return patient


@router.post(
    "/patients/{patient_id}/gateway",
    **documented(GatewayAssigned, 201),
    status_code=201,
    summary="Assign a gateway kit to the patient",
)
def assign_gateway(conn: DbConn, staff: EnrollerStaff, patient_id: uuid.UUID, body: GatewayAssignIn) -> dict[str, Any]:
    row = queries.enrollment.assign_gateway(conn, staff, patient_id, body.gateway_id)
    audit.record(
        conn,
        staff,
        "assign_gateway",
        f"patient/{patient_id}/gateway",
        patient_id=patient_id,
        detail={"gateway_id": body.gateway_id},
    )
    return row


@router.delete(
    "/patients/{patient_id}/gateway",
    **documented(GatewayAssignmentEnded),
    summary="End the patient's gateway kit now (frees the kit)",
)
def end_assignment(conn: DbConn, staff: EnrollerStaff, patient_id: uuid.UUID) -> dict[str, Any]:
    row = queries.enrollment.end_assignment(conn, staff, patient_id)
    audit.record(
        conn,
        staff,
        "end_gateway_assignment",
        f"patient/{patient_id}/gateway",
        patient_id=patient_id,
        detail={"gateway_id": row["gateway_id"]},
    )
    return row


@router.post(
    "/patients/{patient_id}/enrollment-code",
    status_code=201,
    response_model=EnrollmentCodeOut,
    summary="Issue a one-time enrollment code for the patient's gateway kit (shown once)",
)
def issue_code(conn: DbConn, staff: EnrollerStaff, settings: AppSettings, patient_id: uuid.UUID) -> EnrollmentCodeOut:
    out = queries.enrollment.issue_code(
        conn, staff, patient_id, pepper=settings.enrollment_pepper, ttl_s=settings.enrollment_code_ttl_s
    )
    audit.record(conn, staff, "issue_enrollment_code", f"gateway/{out['gateway_id']}", patient_id=patient_id)
    return EnrollmentCodeOut(**out)


@router.post(
    "/gateway-enrollment",
    response_model=EnrollmentResponse,
    responses={404: {"description": "unknown code"}, 410: {"description": "code used or expired"}},
    summary="Gateway exchanges its one-time code for MQTT credentials (no staff token)",
)
def gateway_enrollment(
    conn: DbConn, settings: AppSettings, request: Request, body: EnrollmentRequest
) -> EnrollmentResponse:
    if body.serial is not None:
        try:
            no_nul(body.serial)
        except ValueError as err:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"serial: {err}") from err
    try:
        h = secrets_util.code_hash(no_nul(body.code), settings.enrollment_pepper)
    except ValueError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"code: {err}") from err
    password = secrets_util.new_password()
    gateway_id, patient_id = queries.enrollment.redeem_code(conn, h, body.serial, password)
    audit.record(
        conn,
        None,
        "gateway_enrolled",
        f"gateway/{gateway_id}",
        patient_id=patient_id,
        remote_addr=request.client.host if request.client else None,
    )
    log.info("gateway enrolled gateway_id=%s", gateway_id)
    return EnrollmentResponse(
        gateway_id=gateway_id,
        mqtt_url=settings.mqtt_public_url,
        mqtt_username=gateway_id,
        mqtt_password=password,
        ca_cert_pem=settings.mqtt_ca_cert_pem,
    )
