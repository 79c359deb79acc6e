"""Browser security of the service, as ASGI middleware.

- ``SecurityHeaders``: CSP, X-Frame-Options, nosniff, Referrer-Policy and (over https) HSTS
  on every response.
- ``OriginCheck``: a cookie-authenticated POST/PUT/PATCH/DELETE must come from our own
  origin (Origin header, else Referer). This is the CSRF defence besides the SameSite=Strict
  cookie; bearer-token clients are exempt, since a browser cannot attach that header
  cross-origin without a CORS preflight this service never grants.
- ``RefusalAudit``: an authenticated staff member refused with 403/404 (another unit's
  patient, alert or gateway; a missing role) gets a ``read_refused``/``write_refused`` audit
  row. The request's own transaction has rolled back by then, so the row is written on a
  connection of its own.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
from fastapi import Request, Response
from fastapi.responses import JSONResponse
from psycopg_pool import ConnectionPool
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clinic_api import audit, error_pages
from clinic_api.auth import Staff
from clinic_api.deps import COOKIE_NAME
from clinic_api.settings import Settings

log = logging.getLogger(__name__)

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_PORTS = {"http": 80, "https": 443}
# FastAPI's Swagger UI and ReDoc pages: CDN scripts and an inline bootstrap script.
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
DOCS_CDN = "https://cdn.jsdelivr.net"
INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)
GATEWAY_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,62}$")
CROSS_ORIGIN_TEXT = (
    "Ingen behörighet",
    "Begäran kom från en annan webbplats och avvisades. Öppna egenmon direkt i webbläsaren och försök igen.",
)


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of a URL, lower-case and without a default port; None for
    ``null`` or anything that is not http(s)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    if port is None or port == DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


class Policy:
    """The header values and allowed origins of one app, computed once from its settings."""

    def __init__(self, settings: Settings) -> None:
        form_action = ["'self'"]
        issuer = origin_of(settings.effective_issuer)
        own = origin_of(settings.public_base_url)
        # The sign-in form redirects to the region's identity provider.
        if issuer and issuer != own:
            form_action.append(issuer)
        self.csp = "; ".join(
            [
                "default-src 'self'",
                "img-src 'self' data:",
                "style-src 'self'",
                "object-src 'none'",
                "frame-ancestors 'none'",
                f"form-action {' '.join(form_action)}",
                "base-uri 'none'",
            ]
        )
        self.https_base = settings.public_base_url.startswith("https:")
        self.allowed_origins = frozenset(o for o in (own, *settings.allowed_origins) if o)

    def docs_csp(self, body: bytes) -> str:
        # The docs pages are FastAPI's own templates, with no user input. Their one inline
        # script is allowed by its hash, not 'unsafe-inline'; styles need 'unsafe-inline'
        # because Swagger UI and ReDoc inject style elements at run time (styles cannot
        # run code). Only these paths get this policy.
        digests = (hashlib.sha256(m).digest() for m in INLINE_SCRIPT.findall(body))
        hashes = [f"'sha256-{base64.b64encode(d).decode()}'" for d in digests]
        return "; ".join(
            [
                "default-src 'self'",
                f"script-src 'self' {DOCS_CDN} {' '.join(hashes)}".rstrip(),
                f"style-src 'self' {DOCS_CDN} https://fonts.googleapis.com 'unsafe-inline'",
                "font-src 'self' https://fonts.gstatic.com",
                "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly",
                "worker-src 'self' blob:",
                "object-src 'none'",
                "frame-ancestors 'none'",
                "form-action 'self'",
                "base-uri 'none'",
            ]
        )

    def headers(self, scope: Scope, csp: str | None = None) -> dict[str, str]:
        out = {
            "Content-Security-Policy": csp or self.csp,
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        }
        if scope.get("scheme") == "https" or self.https_base:
            out["Strict-Transport-Security"] = "max-age=31536000"
        return out

    def own_origin(self, request: Request) -> str | None:
        host = request.headers.get("host")
        return origin_of(f"{request.url.scheme}://{host}") if host else None

    def same_origin(self, request: Request) -> bool:
        claimed = request.headers.get("origin")
        if claimed is None:
            referer = request.headers.get("referer")
            if not referer:
                return False
            claimed = referer
        origin = origin_of(claimed)
        return origin is not None and (origin in self.allowed_origins or origin == self.own_origin(request))


def add_security_headers(policy: Policy, scope: Scope, response: Response) -> None:
    for name, value in policy.headers(scope).items():
        response.headers.setdefault(name, value)


class SecurityHeaders:
    def __init__(self, app: ASGIApp, policy: Policy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] in DOCS_PATHS:
            await self._docs(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.policy.headers(scope).items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _docs(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Small pages: hold the body back to hash its inline script into the policy.
        start: Message | None = None
        body: list[bytes] = []

        async def buffer(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            body.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            whole = b"".join(body)
            headers = MutableHeaders(scope=start)
            for name, value in self.policy.headers(scope, self.policy.docs_csp(whole)).items():
                headers[name] = value
            await send(start)
            await send({"type": "http.response.body", "body": whole})

        await self.app(scope, receive, buffer)


class OriginCheck:
    def __init__(self, app: ASGIApp, policy: Policy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in UNSAFE_METHODS:
            request = Request(scope)
            # With any Authorization header the cookie is never read (clinic_api.deps._token).
            # The dev issuer's endpoints never read the session cookie (its /token is called
            # server to server in the sign-in), so only the pages and the API are checked.
            cookie_auth = (
                COOKIE_NAME in request.cookies
                and "authorization" not in request.headers
                and not scope["path"].startswith("/dev-issuer/")
            )
            if cookie_auth and not self.policy.same_origin(request):
                log.warning(
                    "refused cross-origin %s %s (origin %r)",
                    scope["method"],
                    scope["path"],
                    request.headers.get("origin"),
                )
                response: Response
                if error_pages.wants_html(scope["path"]):
                    response = error_pages.page(request, 403, text=CROSS_ORIGIN_TEXT)
                else:
                    response = JSONResponse({"detail": "cross-origin request refused"}, status_code=403)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _alert_id(value: Any) -> int | None:
    try:
        n = int(str(value))
    except ValueError:
        return None
    return n if 1 <= n < 2**63 else None


class RefusalAudit:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # deps._authenticate puts the staff member here (request.state shares this dict).
        state = scope.setdefault("state", {})

        async def send_after_audit(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (403, 404):
                staff = state.get("staff")
                if isinstance(staff, Staff):
                    # Before the response goes out, so a client that then searches the log finds it.
                    await anyio.to_thread.run_sync(self._record, scope, staff, message["status"])
            await send(message)

        await self.app(scope, receive, send_after_audit)

    @staticmethod
    def _record(scope: Scope, staff: Staff, status: int) -> None:
        params = dict(scope.get("path_params") or {})
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        patient = params.get("patient_id") or (query.get("patient_id") or [None])[0]
        gateway = params.get("gateway_id")
        pool: ConnectionPool = scope["app"].state.pool
        try:
            with pool.connection() as conn:
                audit.record_refusal(
                    conn,
                    staff,
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    patient_id=_uuid(patient) if patient is not None else None,
                    alert_id=_alert_id(params["alert_id"]) if "alert_id" in params else None,
                    gateway_id=str(gateway) if gateway is not None and GATEWAY_ID.match(str(gateway)) else None,
                )
        except Exception:
            # The refusal itself stands; a lost audit row must be visible in the log.
            log.exception("could not audit a refused %s %s", scope["method"], scope["path"])
