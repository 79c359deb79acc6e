"""The development OIDC issuer of the local demo (only mounted when ``demo`` is on).

Publishes discovery and JWKS like a real issuer, and a login page listing the demo staff:
choosing one issues a token into an HttpOnly cookie (the pages) or returns it (API clients).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from clinic_api import queries
from clinic_api.auth import DevIssuerKeys
from clinic_api.deps import COOKIE_NAME, AppSettings, DbConn
from clinic_api.models import SafeStr
from clinic_api.pages import templates

router = APIRouter(prefix="/dev-issuer", tags=["dev-issuer"])


def _keys(request: Request) -> DevIssuerKeys:
    keys: DevIssuerKeys = request.app.state.dev_keys
    return keys


@router.get("/.well-known/openid-configuration")
def discovery(settings: AppSettings) -> dict[str, Any]:
    iss = settings.dev_issuer
    return {
        "issuer": iss,
        "jwks_uri": iss + "/jwks",
        "authorization_endpoint": iss + "/login",
        "token_endpoint": iss + "/token",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }


@router.get("/jwks")
def jwks(request: Request) -> dict[str, Any]:
    return _keys(request).jwks()


class TokenIn(BaseModel):
    subject: SafeStr = Field(min_length=1, max_length=200)


def _issue(request: Request, settings: AppSettings, conn: DbConn, subject: str) -> str:
    row = conn.execute("SELECT display_name FROM staff WHERE subject = %s AND active", (subject,)).fetchone()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no demo staff with this subject")
    return _keys(request).issue(
        issuer=settings.dev_issuer,
        audience=settings.oidc_audience,
        subject=subject,
        ttl_s=settings.dev_token_ttl_s,
        name=row[0],
    )


@router.post("/token", summary="Issue a token for a demo staff member (API clients, tests)")
def token(request: Request, settings: AppSettings, conn: DbConn, body: TokenIn) -> dict[str, Any]:
    return {"access_token": _issue(request, settings, conn, body.subject), "token_type": "Bearer"}


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_page(request: Request, conn: DbConn) -> Response:
    staff = queries._rows(conn, "SELECT subject, display_name, roles FROM staff WHERE active ORDER BY display_name")
    return templates.TemplateResponse(request, "login.html", {"staff": staff, "me": None})


@router.post("/login", include_in_schema=False)
def login(
    request: Request, settings: AppSettings, conn: DbConn, subject: Annotated[SafeStr, Form(max_length=200)]
) -> Response:
    tok = _issue(request, settings, conn, subject)
    resp = RedirectResponse("/", status_code=303)
    resp.set_cookie(
        COOKIE_NAME,
        tok,
        httponly=True,
        samesite="strict",
        secure=settings.cookie_secure and settings.public_base_url.startswith("https:"),
        max_age=settings.dev_token_ttl_s,
        path="/",
    )
    return resp
