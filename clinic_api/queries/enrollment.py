"""Enrolment: a patient with a personnummer, gateway kits, kit assignment and one-time codes.

The queries behind ``POST /api/v1/patients``, ``/patients/{id}/gateway``,
``/patients/{id}/enrollment-code``, ``POST /api/v1/gateways`` and the admin pages. Unit
scoping is done here (a staff member enrols only into their own units); callers check the
role and write the audit row.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from typing import Any

import psycopg
from fastapi import HTTPException, status
from psycopg.rows import dict_row

from clinic_api import secrets_util
from clinic_api.auth import Staff
from clinic_api.errors import NotFound
from clinic_api.models import GatewayIn, PatientIn
from clinic_api.queries._db import Row, _rows
from clinic_api.queries.care_plans import new_care_plan
from clinic_api.queries.gateways import current_gateway
from clinic_api.queries.patients import patient_for

# Error details the pages translate (clinic_api/form_errors.py); the API returns them as they are.
NOT_MY_UNIT = "you can enrol patients only into your own care units"
PATIENT_EXISTS = "a patient with this personnummer is already enrolled"
KIT_TAKEN = "this gateway is assigned to another patient"
NO_KIT = "assign a gateway kit to the patient first"
GATEWAY_EXISTS = "gateway id or serial already registered"
NO_KIT_TO_END = "the patient has no gateway kit assigned"


def _pseudonym() -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "P-" + "".join(secrets.choice(alphabet) for _ in range(8))


def create_patient(conn: psycopg.Connection[Any], staff: Staff, body: PatientIn) -> Row:
    """The patient row (never the personnummer, which goes only to ``patient_identity``)."""
    if body.unit_id not in staff.unit_ids:
        raise HTTPException(status.HTTP_403_FORBIDDEN, NOT_MY_UNIT)
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
        raise HTTPException(status.HTTP_409_CONFLICT, PATIENT_EXISTS) from err
    if body.care_plan is not None:
        patient["care_plan"] = new_care_plan(conn, staff, patient["id"], body.care_plan)
    return patient


def assign_gateway(conn: psycopg.Connection[Any], staff: Staff, patient_id: uuid.UUID, gateway_id: str) -> Row:
    """Assign a registered kit from now; the patient's previous kit (if any) ends now."""
    patient_for(conn, staff, patient_id)
    if conn.execute("SELECT 1 FROM gateway WHERE id = %s", (gateway_id,)).fetchone() is None:
        raise NotFound("gateway")
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
                (gateway_id, patient_id),
            ).fetchone()
    except psycopg.errors.ExclusionViolation as err:
        raise HTTPException(status.HTTP_409_CONFLICT, KIT_TAKEN) from err
    assert row is not None
    return {"assignment_id": row[0], "gateway_id": gateway_id, "patient_id": patient_id, "valid_from": row[1]}


def end_assignment(conn: psycopg.Connection[Any], staff: Staff, patient_id: uuid.UUID) -> Row:
    """End the patient's current kit now (the kit is free for another patient; readings
    measured until now stay the patient's)."""
    patient_for(conn, staff, patient_id)
    row = conn.execute(
        """UPDATE gateway_assignment SET valid = tstzrange(lower(valid), now())
           WHERE patient_id = %s AND valid @> now() AND lower(valid) < now()
           RETURNING gateway_id, upper(valid)""",
        (patient_id,),
    ).fetchone()
    if row is None:
        raise HTTPException(status.HTTP_409_CONFLICT, NO_KIT_TO_END)
    return {"gateway_id": row[0], "patient_id": patient_id, "valid_to": row[1]}


def issue_code(
    conn: psycopg.Connection[Any], staff: Staff, patient_id: uuid.UUID, *, pepper: str, ttl_s: int
) -> dict[str, Any]:
    """A new one-time code for the patient's current kit; only its HMAC is stored, so the
    code exists in this return value and nowhere else."""
    patient_for(conn, staff, patient_id)
    gw = current_gateway(conn, patient_id)
    if gw is None:
        raise HTTPException(status.HTTP_409_CONFLICT, NO_KIT)
    code = secrets_util.new_enrollment_code()
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl_s)
    conn.execute(
        """INSERT INTO enrollment_code (code_hash, gateway_id, patient_id, created_by, expires_at)
           VALUES (%s, %s, %s, %s, %s)""",
        (secrets_util.code_hash(code, pepper), gw["id"], patient_id, staff.id, expires),
    )
    return {"code": code, "gateway_id": gw["id"], "expires_at": expires}


def register_gateway(conn: psycopg.Connection[Any], body: GatewayIn) -> Row:
    try:
        with conn.transaction():
            conn.execute("INSERT INTO gateway (id, serial) VALUES (%s, %s)", (body.id, body.serial))
    except psycopg.errors.UniqueViolation as err:
        raise HTTPException(status.HTTP_409_CONFLICT, GATEWAY_EXISTS) from err
    return {"id": body.id, "serial": body.serial}


def roster(conn: psycopg.Connection[Any], staff: Staff) -> list[Row]:
    """My units' active patients with their current kit: what enrolment needs, no clinical data."""
    return _rows(
        conn,
        """SELECT p.id, p.pseudonym, p.display_name, p.created_at, u.code AS unit_code,
                  ga.gateway_id, g.enrolled_at
           FROM patient p JOIN care_unit u ON u.id = p.unit_id
           LEFT JOIN gateway_assignment ga ON ga.patient_id = p.id AND ga.valid @> now()
           LEFT JOIN gateway g ON g.id = ga.gateway_id
           WHERE p.unit_id = ANY(%s) AND p.active
           ORDER BY p.created_at DESC, p.pseudonym""",
        (list(staff.unit_ids),),
    )


def free_gateways(conn: psycopg.Connection[Any]) -> list[Row]:
    """Registered kits not assigned to anyone now (the choices of the assign form)."""
    return _rows(
        conn,
        """SELECT g.id, g.serial FROM gateway g
           WHERE NOT EXISTS (SELECT 1 FROM gateway_assignment ga WHERE ga.gateway_id = g.id AND ga.valid @> now())
           ORDER BY g.id""",
    )


def redeem_code(
    conn: psycopg.Connection[Any], code_hash: str, serial: str | None, password: str
) -> tuple[str, uuid.UUID]:
    """Use a one-time code once: mark it used and give its gateway the new credential (and the
    serial it reports), hashed from ``password``; returns (gateway id, patient id). 404 unknown, 410 used or expired,
    409 when the serial belongs to another gateway."""
    row = conn.execute(
        "SELECT gateway_id, patient_id, expires_at, used_at FROM enrollment_code WHERE code_hash = %s FOR UPDATE",
        (code_hash,),
    ).fetchone()
    if row is None:
        raise NotFound("enrollment code", detail="unknown enrollment code")
    gateway_id, patient_id, expires_at, used_at = row
    if used_at is not None:
        raise HTTPException(status.HTTP_410_GONE, "enrollment code already used")
    if expires_at <= dt.datetime.now(dt.UTC):
        raise HTTPException(status.HTTP_410_GONE, "enrollment code expired")
    conn.execute("UPDATE enrollment_code SET used_at = now() WHERE code_hash = %s", (code_hash,))
    try:
        with conn.transaction():
            conn.execute(
                """UPDATE gateway SET credential_hash = %s, enrolled_at = now(), serial = coalesce(%s, serial)
                   WHERE id = %s""",
                (secrets_util.password_hash(password), serial, gateway_id),
            )
    except psycopg.errors.UniqueViolation as err:
        raise HTTPException(status.HTTP_409_CONFLICT, "serial belongs to another gateway") from err
    return str(gateway_id), patient_id
