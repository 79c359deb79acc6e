"""Dependency aliases for the routers: ``DbConn``, ``CurrentStaff``, role-gated variants."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import psycopg
from fastapi import Depends, HTTPException, Request, status
from psycopg_pool import ConnectionPool

from clinic_api import sessions
from clinic_api.auth import Staff, TokenVerifier
from clinic_api.errors import AuthError
from clinic_api.queries.staff import load_staff
from clinic_api.settings import Settings

# The pages' session: a signed value (clinic_api.sessions) naming the staff subject, set by
# the OIDC callback (routers/login.py).
COOKIE_NAME = "egenmon_session"


class LoginRequired(Exception):  # noqa: N818 - a control-flow signal for the page routes, not an error
    """Raised by page dependencies; the app turns it into a redirect to the sign-in."""


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_conn(request: Request) -> Iterator[psycopg.Connection[Any]]:
    pool: ConnectionPool = request.app.state.pool
    # One transaction per request: the audit row commits with the read or change it records.
    with pool.connection() as conn:
        yield conn


AppSettings = Annotated[Settings, Depends(get_app_settings)]
# scope="function": the transaction commits before the response is sent.
DbConn = Annotated[psycopg.Connection[Any], Depends(get_conn, scope="function")]


def _remote_addr(request: Request) -> str | None:
    return request.client.host if request.client else None


def _subject(request: Request, *, cookie: bool) -> str | None:
    """The caller's subject from a bearer token, else (pages) the session cookie; None if neither."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None
        verifier: TokenVerifier = request.app.state.verifier
        return verifier.subject(value.strip())
    session = request.cookies.get(COOKIE_NAME) if cookie else None
    if not session:
        return None
    signer: sessions.CookieSigner = request.app.state.cookie_signer
    sub = signer.verify(sessions.SESSION, session).get("sub")
    if not isinstance(sub, str) or not sub:
        raise AuthError("session has no subject")
    return sub


def _authenticate(request: Request, conn: psycopg.Connection[Any], *, cookie: bool) -> Staff:
    unauthorized = {"WWW-Authenticate": "Bearer"}
    try:
        subject = _subject(request, cookie=cookie)
    except AuthError as err:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, err.reason, headers=unauthorized) from err
    if subject is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token", headers=unauthorized)
    staff = load_staff(conn, subject, _remote_addr(request))
    if staff is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "no active staff account for this identity")
    # Who asked: the refusal audit (clinic_api.security) and the error pages read it.
    request.state.staff = staff
    return staff


def current_staff(request: Request, conn: DbConn) -> Staff:
    # The API accepts the page session too, so the pages' own scripts could call it. The
    # cookie is SameSite=Lax (the IdP's redirect back needs it), so unsafe requests that
    # carry it must also pass the Origin check (clinic_api.security).
    return _authenticate(request, conn, cookie=True)


def page_staff(request: Request, conn: DbConn) -> Staff:
    try:
        return _authenticate(request, conn, cookie=True)
    except HTTPException as err:
        if err.status_code == status.HTTP_401_UNAUTHORIZED:
            raise LoginRequired from err
        raise


CurrentStaff = Annotated[Staff, Depends(current_staff)]
PageStaff = Annotated[Staff, Depends(page_staff)]


def require_clinical(staff: CurrentStaff) -> Staff:
    if not staff.clinical:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "clinical data needs the nurse or physician role")
    return staff


def require_admin(staff: CurrentStaff) -> Staff:
    if not staff.has("admin"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "needs the admin role")
    return staff


def require_enroller(staff: CurrentStaff) -> Staff:
    # Enrolment (patient, kit, one-time code) is the admin's desk work as well as the
    # clinicians'; both are held to their own care units by the queries.
    if not (staff.clinical or staff.has("admin")):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "needs a clinical or admin role")
    return staff


def require_auditor(staff: CurrentStaff) -> Staff:
    if not staff.has("auditor"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "needs the auditor role")
    return staff


ClinicalStaff = Annotated[Staff, Depends(require_clinical)]
AdminStaff = Annotated[Staff, Depends(require_admin)]
AuditorStaff = Annotated[Staff, Depends(require_auditor)]
EnrollerStaff = Annotated[Staff, Depends(require_enroller)]
