"""Enrollment: create a patient, assign a gateway kit, issue a one-time code, and the
gateway's code-for-credentials exchange (device_profiles.messages)."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import uuid
from typing import Any

import psycopg
from fastapi import APIRouter, HTTPException, Request, status
from psycopg.rows import dict_row

from clinic_api import audit, queries, secrets_util
from clinic_api.deps import AppSettings, ClinicalStaff, DbConn
from clinic_api.models import EnrollmentCodeOut, GatewayAssignIn, PatientIn, no_nul
from device_profiles.messages import EnrollmentRequest, EnrollmentResponse

log = logging.getLogger(__name__)
router = APIRouter(tags=["enrollment"])


def _pseudonym() -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "P-" + "".join(secrets.choice(alphabet) for _ in range(8))


@router.post("/patients", status_code=201, summary="Enrol a patient (personnummer stored once, separately)")
def create_patient(conn: DbConn, staff: ClinicalStaff, body: PatientIn) -> dict[str, Any]:
    if body.unit_id not in staff.unit_ids:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "you can enrol patients only into your own care units")
    birth_year = int(body.personnummer[:4])
    try:
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                """INSERT INTO patient (pseudonym, display_name, birth_year, unit_id) VALUES (%s, %s, %s, %s)
                   RETURNING id, pseudonym, display_name, birth_year, unit_id, created_at""",
                (_pseudonym(), body.display_name, birth_year, body.unit_id),
            )
            patient = cur.fetchone()
            assert patient is not None
            cur.execute(
                "INSERT INTO patient_identity (patient_id, personnummer) VALUES (%s, %s)",
                (patient["id"], body.personnummer),
            )
    except psycopg.errors.UniqueViolation as err:
        raise HTTPException(status.HTTP_409_CONFLICT, "a patient with this personnummer is already enrolled") from err
    if body.care_plan is not None:
        patient["care_plan"] = queries.new_care_plan(conn, staff, patient["id"], body.care_plan)
    audit.record(conn, staff, "create", "patient", patient_id=patient["id"])
    log.info("patient enrolled pseudonym=%s", patient["pseudonym"])
    return patient


@router.post("/patients/{patient_id}/gateway", status_code=201, summary="Assign a gateway kit to the patient")
def assign_gateway(conn: DbConn, staff: ClinicalStaff, patient_id: uuid.UUID, body: GatewayAssignIn) -> dict[str, Any]:
    queries.patient_for(conn, staff, patient_id)
    if conn.execute("SELECT 1 FROM gateway WHERE id = %s", (body.gateway_id,)).fetchone() is None:
        raise queries.not_found("gateway")
    # The patient's previous kit (if any) ends now; the new one starts now.
    conn.execute(
        """UPDATE gateway_assignment SET valid = tstzrange(lower(valid), now())
           WHERE patient_id = %s AND valid @> now() AND lower(valid) < now()""",
        (patient_id,),
    )
    try:
        with conn.transaction():
            row = conn.execute(
                """INSERT INTO gateway_assignment (gateway_id, patient_id, valid)
                   VALUES (%s, %s, tstzrange(now(), NULL)) RETURNING id, lower(valid)""",
                (body.gateway_id, patient_id),
            ).fetchone()
    except psycopg.errors.ExclusionViolation as err:
        raise HTTPException(status.HTTP_409_CONFLICT, "this gateway is assigned to another patient") from err
    assert row is not None
    audit.record(
        conn,
        staff,
        "assign_gateway",
        f"patient/{patient_id}/gateway",
        patient_id=patient_id,
        detail={"gateway_id": body.gateway_id},
    )
    return {"assignment_id": row[0], "gateway_id": body.gateway_id, "patient_id": patient_id, "valid_from": row[1]}


@router.post(
    "/patients/{patient_id}/enrollment-code",
    status_code=201,
    response_model=EnrollmentCodeOut,
    summary="Issue a one-time enrollment code for the patient's gateway kit (shown once)",
)
def issue_code(conn: DbConn, staff: ClinicalStaff, settings: AppSettings, patient_id: uuid.UUID) -> EnrollmentCodeOut:
    queries.patient_for(conn, staff, patient_id)
    gw = queries.current_gateway(conn, patient_id)
    if gw is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "assign a gateway kit to the patient first")
    code = secrets_util.new_enrollment_code()
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=settings.enrollment_code_ttl_s)
    conn.execute(
        """INSERT INTO enrollment_code (code_hash, gateway_id, patient_id, created_by, expires_at)
           VALUES (%s, %s, %s, %s, %s)""",
        (secrets_util.code_hash(code, settings.enrollment_pepper), gw["id"], patient_id, staff.id, expires),
    )
    audit.record(conn, staff, "issue_enrollment_code", f"gateway/{gw['id']}", patient_id=patient_id)
    return EnrollmentCodeOut(code=code, gateway_id=gw["id"], expires_at=expires)


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
    row = conn.execute(
        "SELECT gateway_id, patient_id, expires_at, used_at FROM enrollment_code WHERE code_hash = %s FOR UPDATE",
        (h,),
    ).fetchone()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown enrollment code")
    gateway_id, patient_id, expires_at, used_at = row
    if used_at is not None:
        raise HTTPException(status.HTTP_410_GONE, "enrollment code already used")
    if expires_at <= dt.datetime.now(dt.UTC):
        raise HTTPException(status.HTTP_410_GONE, "enrollment code expired")
    password = secrets_util.new_password()
    conn.execute("UPDATE enrollment_code SET used_at = now() WHERE code_hash = %s", (h,))
    try:
        with conn.transaction():
            conn.execute(
                """UPDATE gateway SET credential_hash = %s, enrolled_at = now(), serial = coalesce(%s, serial)
                   WHERE id = %s""",
                (secrets_util.password_hash(password), body.serial, gateway_id),
            )
    except psycopg.errors.UniqueViolation as err:
        raise HTTPException(status.HTTP_409_CONFLICT, "serial belongs to another gateway") from err
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
