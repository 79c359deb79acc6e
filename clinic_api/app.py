"""The FastAPI application factory. Nothing is created at import time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from psycopg_pool import ConnectionPool

from clinic_api import admin_pages, audit_pages, care_plan_pages, pages
from clinic_api.auth import DevIssuerKeys, JwksKeySource, KeySource, TokenVerifier
from clinic_api.deps import LoginRequired
from clinic_api.metrics import Metrics
from clinic_api.routers import admin, alerts, analytics, audit, dev_issuer, enrollment, fhir, gateways, patients
from clinic_api.settings import Settings, get_settings

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"


def create_app(settings: Settings | None = None, *, dev_keys: DevIssuerKeys | None = None) -> FastAPI:
    """Build the app; ``dev_keys`` lets tests reuse one generated demo key across apps."""
    settings = settings or get_settings()
    dev_keys = (dev_keys or DevIssuerKeys()) if settings.demo else None
    keys: KeySource
    if settings.oidc_jwks_url:
        keys = JwksKeySource(settings.oidc_jwks_url)
    elif dev_keys is not None and settings.effective_issuer == settings.dev_issuer:
        # The demo verifies its own tokens with the in-process key instead of fetching its
        # own JWKS over HTTP (which a single-worker server could not answer while blocked).
        keys = dev_keys
    else:
        keys = JwksKeySource(settings.effective_issuer.rstrip("/") + "/.well-known/jwks.json")

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

    app = FastAPI(
        title="egenmon clinic API",
        version="1.0.0",
        description="Alerts, patients, observations, care plans, enrollment and FHIR export for the monitoring team.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.dev_keys = dev_keys
    app.state.verifier = TokenVerifier(
        keys=keys, issuer=settings.effective_issuer, audience=settings.oidc_audience, leeway_s=settings.oidc_leeway_s
    )

    @app.exception_handler(LoginRequired)
    async def _login_redirect(request: Request, exc: LoginRequired) -> Response:
        target = "/dev-issuer/login" if settings.demo else "/login-required"
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        # 422 with the field paths and messages, never the echoed input (it may hold a personnummer).
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    Metrics().install(app)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    for router in (
        alerts.router,
        patients.router,
        enrollment.router,
        gateways.router,
        fhir.router,
        audit.router,
        admin.router,
        analytics.router,
    ):
        app.include_router(router, prefix="/api/v1")
    if settings.demo:
        app.include_router(dev_issuer.router)
    app.include_router(pages.router)
    app.include_router(care_plan_pages.router)
    app.include_router(admin_pages.router)
    app.include_router(audit_pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
