"""The development OIDC issuer of the local demo (only mounted when ``demo`` is on).

It speaks the same authorization-code flow with PKCE that a region's IdP does, so the demo
pages sign in exactly as production does: discovery, JWKS, ``/authorize`` (a page listing
the demo staff instead of a SITHS card), ``/token`` (code + code_verifier → ID token with
the nonce) and ``/logout``. Only the registered client and its redirect URI are served.
For API clients and tests ``POST /token {"subject": ...}`` still returns a bearer token.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, ValidationError

from clinic_api import queries
from clinic_api.auth import DevIssuerKeys
from clinic_api.deps import AppSettings, DbConn
from clinic_api.errors import NotFound
from clinic_api.models import SafeStr
from clinic_api.oidc import pkce_matches
from clinic_api.pages import templates
from clinic_api.settings import Settings

router = APIRouter(prefix="/dev-issuer", tags=["dev-issuer"])

CODE_TTL_S = 60  # RFC 6749 §4.1.2: short-lived, single use
ID_TOKEN_TTL_S = 300


@dataclass(frozen=True, slots=True)
class PendingCode:
    subject: str
    name: str
    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str | None
    expires: float


@dataclass
class CodeStore:
    """Issued authorization codes, in memory (the demo runs one process)."""

    _codes: dict[str, PendingCode] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def issue(self, pending: PendingCode) -> str:
        code = secrets.token_urlsafe(32)
        with self._lock:
            now = time.monotonic()
            self._codes = {k: v for k, v in self._codes.items() if v.expires > now}
            self._codes[code] = pending
        return code

    def redeem(self, code: str) -> PendingCode | None:
        with self._lock:
            pending = self._codes.pop(code, None)  # single use, also when the rest fails
        if pending is None or pending.expires < time.monotonic():
            return None
        return pending


def _keys(request: Request) -> DevIssuerKeys:
    keys: DevIssuerKeys = request.app.state.dev_keys
    return keys


def _codes(request: Request) -> CodeStore:
    codes: CodeStore = request.app.state.dev_codes
    return codes


@router.get("/.well-known/openid-configuration")
def discovery(settings: AppSettings) -> dict[str, Any]:
    iss = settings.dev_issuer
    return {
        "issuer": iss,
        "jwks_uri": iss + "/jwks",
        "authorization_endpoint": iss + "/authorize",
        "token_endpoint": iss + "/token",
        "end_session_endpoint": iss + "/logout",
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "scopes_supported": ["openid", "profile"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }


@router.get("/jwks")
def jwks(request: Request) -> dict[str, Any]:
    return _keys(request).jwks()


def _tokens(request: Request, settings: Settings, subject: str, name: str, nonce: str | None) -> dict[str, Any]:
    keys = _keys(request)
    # A region may name staff by another claim (HSA-id); the demo tokens carry it too.
    extra = {settings.oidc_subject_claim: subject} if settings.oidc_subject_claim != "sub" else {}
    access = keys.issue(
        issuer=settings.dev_issuer,
        audience=settings.oidc_audience,
        subject=subject,
        ttl_s=settings.dev_token_ttl_s,
        name=name,
        extra=extra,
    )
    out: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": settings.dev_token_ttl_s}
    if nonce is not None:
        out["id_token"] = keys.issue(
            issuer=settings.dev_issuer,
            audience=settings.client_id,
            subject=subject,
            ttl_s=ID_TOKEN_TTL_S,
            name=name,
            extra={**extra, "nonce": nonce, "auth_time": int(time.time())},
        )
    return out


class TokenIn(BaseModel):
    subject: SafeStr = Field(min_length=1, max_length=200)


class CodeGrantIn(BaseModel):
    grant_type: SafeStr = Field(max_length=50)
    code: SafeStr = Field(min_length=1, max_length=200)
    redirect_uri: SafeStr = Field(max_length=500)
    code_verifier: SafeStr = Field(max_length=200)
    client_id: SafeStr | None = Field(default=None, max_length=200)


async def _token_body(request: Request) -> dict[str, Any]:
    """The token request as JSON (API clients) or a form (the OAuth code grant)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/x-www-form-urlencoded":
        form = await request.form()
        return {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        body = await request.json()
    except ValueError as err:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "body must be JSON or a form") from err
    if not isinstance(body, dict):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "body must be a JSON object")
    return body


def _grant_error(error: str, description: str, status_code: int = 400) -> JSONResponse:
    # RFC 6749 §5.2 error response.
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status_code,
        headers={"Cache-Control": "no-store"},
    )


_TOKEN_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": TokenIn.model_json_schema()},
        "application/x-www-form-urlencoded": {"schema": CodeGrantIn.model_json_schema()},
    },
}


@router.post(
    "/token",
    summary="Token endpoint: the authorization-code grant (PKCE), or a bearer token by subject (API clients, tests)",
    openapi_extra={"requestBody": _TOKEN_BODY},
)
def token(
    request: Request, settings: AppSettings, conn: DbConn, body: Annotated[dict[str, Any], Depends(_token_body)]
) -> Response:
    if "grant_type" not in body:
        try:
            subject = TokenIn.model_validate(body).subject
        except ValidationError as err:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "expected {'subject': ...}") from err
        name = queries.admin.active_staff_name(conn, subject)
        if name is None:
            raise NotFound("demo staff", detail="no demo staff with this subject")
        return JSONResponse(_tokens(request, settings, subject, name, None))
    try:
        grant = CodeGrantIn.model_validate(body)
    except ValidationError:
        return _grant_error("invalid_request", "code, redirect_uri and code_verifier are required")
    if grant.grant_type != "authorization_code":
        return _grant_error("unsupported_grant_type", "only authorization_code")
    pending = _codes(request).redeem(grant.code)
    if pending is None:
        return _grant_error("invalid_grant", "unknown, used or expired code")
    if (grant.client_id or settings.client_id) != pending.client_id or grant.redirect_uri != pending.redirect_uri:
        return _grant_error("invalid_grant", "client or redirect_uri differs from the authorization request")
    if not pkce_matches(grant.code_verifier, pending.code_challenge):
        return _grant_error("invalid_grant", "code_verifier does not match the code_challenge")
    # Like a region's IdP, which knows people, not egenmon's staff rows: whether the person
    # may work in egenmon is the app's decision at the callback.
    return JSONResponse(
        _tokens(request, settings, pending.subject, pending.name, pending.nonce), headers={"Cache-Control": "no-store"}
    )


@dataclass(frozen=True, slots=True)
class AuthRequest:
    client_id: str
    redirect_uri: str
    scope: str
    state: str
    nonce: str
    code_challenge: str
    code_challenge_method: str

    def query(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _checked(req: AuthRequest) -> str | None:
    """Why the request is refused (None: fine). The client and redirect URI are checked by the
    caller first, since an error can only be redirected to a registered URI (RFC 6749 §4.1.2.1)."""
    if "openid" not in req.scope.split():
        return "scope must include openid"
    if req.code_challenge_method != "S256" or len(req.code_challenge) != 43:
        return "PKCE with S256 is required"
    if not req.state or not req.nonce:
        return "state and nonce are required"
    return None


def _refuse_unregistered(settings: Settings, req: AuthRequest) -> None:
    if req.client_id != settings.client_id or req.redirect_uri != settings.redirect_uri:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "unknown client_id or unregistered redirect_uri")


def _back(req: AuthRequest, params: dict[str, str]) -> Response:
    return RedirectResponse(req.redirect_uri + "?" + urlencode({**params, "state": req.state}), status_code=303)


_Q = Annotated[str, Query(max_length=500)]
_F = Annotated[SafeStr, Form(max_length=500)]


@router.get("/authorize", response_class=HTMLResponse, include_in_schema=False)
def authorize_page(
    *,
    request: Request,
    settings: AppSettings,
    conn: DbConn,
    client_id: _Q = "",
    redirect_uri: _Q = "",
    response_type: _Q = "",
    scope: _Q = "",
    state: _Q = "",
    nonce: _Q = "",
    code_challenge: _Q = "",
    code_challenge_method: _Q = "",
) -> Response:
    req = AuthRequest(client_id, redirect_uri, scope, state, nonce, code_challenge, code_challenge_method)
    _refuse_unregistered(settings, req)
    if response_type != "code":
        return _back(req, {"error": "unsupported_response_type"})
    if (why := _checked(req)) is not None:
        return _back(req, {"error": "invalid_request", "error_description": why})
    staff = queries.admin.active_staff(conn)
    return templates.TemplateResponse(request, "login.html", {"staff": staff, "me": None, "auth": req.query()})


@router.post("/authorize", include_in_schema=False)
def authorize(
    *,
    request: Request,
    settings: AppSettings,
    conn: DbConn,
    subject: Annotated[SafeStr, Form(max_length=200)],
    client_id: _F,
    redirect_uri: _F,
    scope: _F,
    state: _F,
    nonce: _F,
    code_challenge: _F,
    code_challenge_method: _F,
) -> Response:
    req = AuthRequest(client_id, redirect_uri, scope, state, nonce, code_challenge, code_challenge_method)
    _refuse_unregistered(settings, req)
    if (why := _checked(req)) is not None:
        return _back(req, {"error": "invalid_request", "error_description": why})
    if (name := queries.admin.active_staff_name(conn, subject)) is None:
        return _back(req, {"error": "access_denied", "error_description": "no active demo staff"})
    code = _codes(request).issue(
        PendingCode(subject, name, client_id, redirect_uri, code_challenge, nonce, time.monotonic() + CODE_TTL_S)
    )
    return _back(req, {"code": code})


@router.get("/logout", include_in_schema=False)
def logout(settings: AppSettings, post_logout_redirect_uri: _Q = "") -> Response:
    # The dev issuer keeps no sign-in session of its own, so ending it is only the redirect.
    if post_logout_redirect_uri != settings.post_logout_redirect_uri:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "unregistered post_logout_redirect_uri")
    return RedirectResponse(post_logout_redirect_uri, status_code=303)


@router.get("/login", include_in_schema=False)
def old_login() -> Response:
    # The demo's printed address from before the code flow; sign-in now starts at the app.
    return RedirectResponse("/ui/login", status_code=303)
