"""The pages' sign-in against the configured OIDC issuer (authorization-code flow, PKCE).

``/ui/login`` sends the browser to the IdP with a fresh state, nonce and S256 code
challenge, kept in a short-lived signed cookie; ``/ui/auth/callback`` checks the state,
exchanges the code, verifies the ID token (signature, iss, aud, exp, nonce), finds the
staff row and starts the session; ``/ui/logout`` ends it (and the IdP's, when advertised).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from clinic_api import audit, sessions
from clinic_api.auth import TokenVerifier
from clinic_api.deps import COOKIE_NAME, AppSettings, DbConn
from clinic_api.errors import AuthError
from clinic_api.oidc import OidcClient, OidcError, authorization_url, check_id_token_claims, end_session_url, new_pkce
from clinic_api.pages import templates
from clinic_api.queries.staff import load_staff
from clinic_api.settings import Settings

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

STATE_COOKIE = "egenmon_sign_in"
STATE_PATH = "/ui/auth"
# Long enough to pick a SITHS card and type the PIN, short enough that a stale tab fails.
STATE_TTL_S = 600
# The role landing (pages.py "/"): nurses to the queue, admins to administration, auditors to the log.
DEFAULT_LANDING = "/"


def _oidc(request: Request) -> OidcClient:
    client: OidcClient = request.app.state.oidc
    return client


def _signer(request: Request) -> sessions.CookieSigner:
    signer: sessions.CookieSigner = request.app.state.cookie_signer
    return signer


def safe_next(target: str | None) -> str | None:
    """Only this site's page paths are followed after sign-in (no open redirect)."""
    if target == "/":
        return target
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


def _set_cookie(resp: Response, settings: Settings, name: str, value: str, *, max_age: int, path: str) -> None:
    # SameSite=Lax, not Strict: the IdP sends the browser back to the callback by a cross-site
    # redirect, and a Strict cookie (the sign-in state, and then the session on the redirect
    # that follows) would not be sent on that navigation. Lax still keeps the cookies off
    # cross-site POSTs and sub-requests, which is what protects the pages' forms.
    resp.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        httponly=True,
        secure=settings.secure_cookies,
        samesite="lax",
    )


def _clear_cookie(resp: Response, settings: Settings, name: str, *, path: str) -> None:
    resp.delete_cookie(name, path=path, httponly=True, secure=settings.secure_cookies, samesite="lax")


def _failed(request: Request, settings: Settings, message: str, status_code: int) -> Response:
    resp = templates.TemplateResponse(
        request,
        "login_error.html",
        {"me": None, "message": message, "provider": settings.provider_name},
        status_code=status_code,
    )
    # The sign-in state is single use: a failed attempt starts over from /ui/login.
    _clear_cookie(resp, settings, STATE_COOKIE, path=STATE_PATH)
    return resp


@router.get("/login-required", response_class=HTMLResponse)
def login_required(request: Request, settings: AppSettings) -> Response:
    return templates.TemplateResponse(
        request, "login_required.html", {"me": None, "provider": settings.provider_name}, status_code=401
    )


@router.get("/ui/login")
def login(
    request: Request, settings: AppSettings, next_: Annotated[str | None, Query(alias="next", max_length=300)] = None
) -> Response:
    try:
        disc = _oidc(request).discovery()
    except OidcError as err:
        log.warning("sign-in: issuer discovery failed: %s", err.reason)
        return _failed(request, settings, "Inloggningstjänsten svarar inte just nu. Försök igen om en stund.", 503)
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    verifier, challenge = new_pkce()
    signed = _signer(request).sign(
        sessions.SIGN_IN, {"st": state, "nn": nonce, "cv": verifier, "nx": safe_next(next_)}, STATE_TTL_S
    )
    target = authorization_url(
        disc,
        client_id=settings.client_id,
        redirect_uri=settings.redirect_uri,
        state=state,
        nonce=nonce,
        code_challenge=challenge,
    )
    resp = RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
    _set_cookie(resp, settings, STATE_COOKIE, signed, max_age=STATE_TTL_S, path=STATE_PATH)
    return resp


@router.get("/ui/auth/callback")
def callback(
    *,
    request: Request,
    settings: AppSettings,
    conn: DbConn,
    code: Annotated[str | None, Query(max_length=2048)] = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    raw = request.cookies.get(STATE_COOKIE)
    if not raw:
        return _failed(request, settings, "Inloggningsförsöket saknas eller har gått ut. Logga in igen.", 400)
    try:
        pending: dict[str, Any] = _signer(request).verify(sessions.SIGN_IN, raw)
    except AuthError as err:
        log.warning("sign-in: state cookie refused: %s", err.reason)
        return _failed(request, settings, "Inloggningsförsöket är ogiltigt eller har gått ut. Logga in igen.", 400)
    if not state or not hmac.compare_digest(state, str(pending.get("st", ""))):
        log.warning("sign-in: state does not match the pending sign-in")
        return _failed(
            request, settings, "Svaret från inloggningstjänsten hör inte till det här inloggningsförsöket.", 400
        )
    if error:
        log.info("sign-in: the IdP answered error=%s", error)
        return _failed(request, settings, f"Inloggningstjänsten avbröt inloggningen ({error}).", 400)
    if not code:
        return _failed(request, settings, "Svaret från inloggningstjänsten saknar inloggningskod.", 400)
    secret = settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else None
    try:
        tokens = _oidc(request).exchange_code(
            code=code,
            redirect_uri=settings.redirect_uri,
            code_verifier=str(pending["cv"]),
            client_id=settings.client_id,
            client_secret=secret,
        )
    except OidcError as err:
        log.warning("sign-in: code exchange failed: %s", err.reason)
        return _failed(request, settings, "Inloggningstjänsten godkände inte inloggningen. Logga in igen.", 502)
    id_token = tokens.get("id_token")
    verifier: TokenVerifier = request.app.state.id_token_verifier
    try:
        if not isinstance(id_token, str):
            raise AuthError("token response has no id_token")
        claims = verifier.claims(id_token)
        check_id_token_claims(claims, nonce=str(pending["nn"]), client_id=settings.client_id)
        subject = verifier.subject_of(claims)
    except AuthError as err:
        log.warning("sign-in: ID token refused: %s", err.reason)
        return _failed(request, settings, "Identiteten från inloggningstjänsten kunde inte verifieras.", 400)
    remote = request.client.host if request.client else None
    staff = load_staff(conn, subject, remote)
    if staff is None:
        audit.record(conn, None, "login_refused", "session", remote_addr=remote, actor=subject)
        return _failed(
            request,
            settings,
            "Du är inloggad hos inloggningstjänsten men har inget aktivt konto i egenmon. Kontakta administratören.",
            403,
        )
    audit.record(conn, staff, "login", "session")
    session = _signer(request).sign(sessions.SESSION, {"sub": subject, "idt": id_token}, settings.session_ttl_s)
    resp = RedirectResponse(safe_next(pending.get("nx")) or DEFAULT_LANDING, status_code=status.HTTP_303_SEE_OTHER)
    _clear_cookie(resp, settings, STATE_COOKIE, path=STATE_PATH)
    _set_cookie(resp, settings, COOKIE_NAME, session, max_age=settings.session_ttl_s, path="/")
    return resp


@router.post("/ui/logout")
def logout(request: Request, settings: AppSettings) -> Response:
    hint: str | None = None
    if raw := request.cookies.get(COOKIE_NAME):
        try:
            idt = _signer(request).verify(sessions.SESSION, raw).get("idt")
            hint = idt if isinstance(idt, str) else None
        except AuthError:
            hint = None  # an expired session still logs out, just without the hint
    target = "/login-required"
    try:
        url = end_session_url(
            _oidc(request).discovery(),
            client_id=settings.client_id,
            post_logout_redirect_uri=settings.post_logout_redirect_uri,
            id_token_hint=hint,
        )
        target = url or target
    except OidcError as err:
        log.warning("logout: issuer discovery failed, ending the local session only: %s", err.reason)
    resp = RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
    _clear_cookie(resp, settings, COOKIE_NAME, path="/")
    return resp
