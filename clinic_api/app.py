"""The FastAPI application factory. Nothing is created at import time."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlencode

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from psycopg_pool import ConnectionPool

from clinic_api import admin_pages, alert_pages, audit_pages, care_plan_pages, error_pages, pages
from clinic_api.auth import DevIssuerKeys, JwksKeySource, KeySource, TokenVerifier
from clinic_api.deps import LoginRequired
from clinic_api.errors import NotFound
from clinic_api.metrics import Metrics
from clinic_api.oidc import OidcClient
from clinic_api.routers import (
    admin,
    alerts,
    analytics,
    audit,
    dev_issuer,
    enrollment,
    fhir,
    gateways,
    letters,
    login,
    patients,
    replays,
)
from clinic_api.security import OriginCheck, Policy, RefusalAudit, SecurityHeaders, add_security_headers
from clinic_api.sessions import CookieSigner
from clinic_api.settings import Settings, get_settings

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"


def create_app(settings: Settings | None = None, *, dev_keys: DevIssuerKeys | None = None) -> FastAPI:
    """Build the app; ``dev_keys`` lets tests reuse one generated demo key across apps."""
    settings = settings or get_settings()
    dev_keys = (dev_keys or DevIssuerKeys()) if settings.demo else None
    # Discovery and the code exchange with the IdP (tests swap ``app.state.oidc.http``).
    http = httpx.Client(timeout=10, follow_redirects=False)
    oidc = OidcClient(settings.effective_issuer, http)
    keys: KeySource
    if settings.oidc_jwks_url:
        keys = JwksKeySource(settings.oidc_jwks_url)
    elif dev_keys is not None and settings.effective_issuer == settings.dev_issuer:
        # The demo verifies its own tokens with the in-process key instead of fetching its
        # own JWKS over HTTP (which a single-worker server could not answer while blocked).
        keys = dev_keys
    else:
        keys = JwksKeySource(lambda: oidc.discovery().jwks_uri)
    # The demo may run without a session secret: a random key per process (sessions end
    # with a restart); outside the demo settings refuse a placeholder.
    secret = (
        secrets.token_bytes(32)
        if settings.session_secret_is_placeholder
        else settings.session_secret.get_secret_value().encode()
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = ConnectionPool(
            settings.database_url,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            open=False,
            name="clinic",
        )
        pool.open(wait=True, timeout=30)
        app.state.pool = pool
        log.info("clinic_api started demo=%s issuer=%s", settings.demo, settings.effective_issuer)
        try:
            yield
        finally:
            pool.close()
            await asyncio.to_thread(http.close)

    app = FastAPI(
        title="egenmon clinic API",
        version="1.0.0",
        description="Alerts, patients, observations, care plans, enrollment and FHIR export for the monitoring team.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.dev_keys = dev_keys
    app.state.verifier = TokenVerifier(
        keys=keys,
        issuer=settings.effective_issuer,
        audience=settings.oidc_audience,
        leeway_s=settings.oidc_leeway_s,
        subject_claim=settings.oidc_subject_claim,
    )
    # ID tokens are addressed to the pages' client id, not to the API audience.
    app.state.id_token_verifier = TokenVerifier(
        keys=keys,
        issuer=settings.effective_issuer,
        audience=settings.client_id,
        leeway_s=settings.oidc_leeway_s,
        subject_claim=settings.oidc_subject_claim,
    )
    app.state.oidc = oidc
    app.state.cookie_signer = CookieSigner(secret)
    app.state.dev_codes = dev_issuer.CodeStore()

    @app.exception_handler(LoginRequired)
    async def _login_redirect(request: Request, exc: LoginRequired) -> Response:
        # No or an expired session: sign in again, then come back to the page (GETs only).
        target = "/ui/login"
        if request.method == "GET":
            path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            target += "?" + urlencode({"next": path})
        return RedirectResponse(target, status_code=303)

    error_pages.install(app)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> Response:
        # Handled inside the middleware stack, so RefusalAudit still sees (and logs) the 404.
        if error_pages.wants_html(request.url.path):
            return error_pages.page(request, 404)
        return JSONResponse({"detail": exc.detail}, status_code=404)

    policy = Policy(settings)

    @app.exception_handler(Exception)
    async def _server_error(request: Request, exc: Exception) -> Response:
        # Starlette answers a 500 from its outermost middleware, outside SecurityHeaders.
        response = error_pages.server_error(request)
        add_security_headers(policy, request.scope, response)
        return response

    Metrics().install(app)
    # Added last = outermost: headers on every answer, the origin check before any work,
    # the refusal audit around the routes (it needs the staff member they authenticated).
    app.add_middleware(RefusalAudit)
    app.add_middleware(OriginCheck, policy=policy)
    app.add_middleware(SecurityHeaders, policy=policy)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    for router in (
        alerts.router,
        patients.router,
        letters.router,
        enrollment.router,
        gateways.router,
        fhir.router,
        audit.router,
        admin.router,
        analytics.router,
        replays.router,
    ):
        app.include_router(router, prefix="/api/v1")
    if settings.demo:
        app.include_router(dev_issuer.router)
    app.include_router(login.router)
    # Before pages: /ui/alerts/{id} and the action forms are alert_pages'.
    app.include_router(alert_pages.router)
    app.include_router(pages.router)
    app.include_router(care_plan_pages.router)
    app.include_router(admin_pages.router)
    app.include_router(audit_pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
