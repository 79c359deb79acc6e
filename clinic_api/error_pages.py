"""Errors as Swedish pages for the web pages, JSON for the API.

Paths a browser opens (``/``, ``/ui/...``, the demo login) get ``error.html``; everything
else (``/api/v1``, the dev issuer's token endpoint, ...) keeps FastAPI's JSON shape. Neither
echoes the request's input (it may hold a personnummer), and a 500 shows no details.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from clinic_api.errors import PageProblem
from clinic_api.pages import templates

# Heading and what to do, per status; other 4xx get GENERIC.
PAGES: dict[int, tuple[str, str]] = {
    403: (
        "Ingen behörighet",
        "Din roll ger inte tillgång till det här. Kontakta din administratör om du behöver behörighet.",
    ),
    404: (
        "Sidan finns inte",
        "Sidan, patienten eller larmet finns inte, eller hör till en vårdenhet du inte arbetar i. "
        "Kontrollera adressen eller gå tillbaka till larmkön.",
    ),
    409: (
        "Åtgärden kunde inte utföras",
        "Uppgiften har redan ändrats, kanske av en kollega. Gå tillbaka, ladda om sidan och försök igen.",
    ),
    422: (
        "Felaktig adress",
        "Adressen innehåller ett ogiltigt värde. Kontrollera länken eller gå tillbaka till larmkön.",
    ),
    500: (
        "Något gick fel",
        "Ett oväntat fel inträffade. Försök igen om en stund; kvarstår felet, kontakta IT-supporten.",
    ),
}
GENERIC = ("Begäran kunde inte utföras", "Gå tillbaka och försök igen.")
FORM_INVALID = ("Felaktiga uppgifter", "Formuläret innehåller ett ogiltigt värde. Gå tillbaka, rätta och skicka igen.")

# Parameter names as staff read them; an unknown name is shown as it is (never the value).
PARAM_SV = {
    "patient_id": "patient-id",
    "alert_id": "larm-id",
    "gateway_id": "gateway-id",
    "unit": "vårdenhet",
    "days": "antal dagar",
    "status": "status",
    "severity": "allvarlighetsgrad",
    "action": "åtgärd",
    "comment": "kommentar",
    "snooze_hours": "antal timmar",
    "back": "återadress",
    "dry_weight_kg": "torrvikt",
    "personal_best_pef": "bästa PEF",
    "spo2_target": "SpO2-mål",
    "notes": "anteckningar",
    "subject": "inloggning",
}
PLACE_SV = {"path": "i adressen", "query": "i adressens filter", "body": "i formuläret", "header": "i begäran"}


def wants_html(path: str) -> bool:
    """Pages a browser shows; the API and machine endpoints stay JSON."""
    return path in {"/", "/ui", "/dev-issuer/login"} or path.startswith("/ui/")


def bad_fields(errors: Iterable[Any]) -> list[str]:
    """'antal dagar (i adressens filter)' for each bad parameter, once, in order."""
    out: list[str] = []
    for e in errors:
        loc: Sequence[Any] = e.get("loc", ()) if isinstance(e, dict) else ()
        place = PLACE_SV.get(str(loc[0]), "") if loc else ""
        names = [str(x) for x in loc[1:] if isinstance(x, str)]
        name = PARAM_SV.get(names[0], names[0]) if names else "värde"
        text = f"{name} ({place})" if place else name
        if text not in out:
            out.append(text)
    return out


def page(
    request: Request,
    status_code: int,
    *,
    fields: Sequence[str] = (),
    form: bool = False,
    text: tuple[str, str] | None = None,
) -> Response:
    """``error.html`` for ``status_code``; ``text`` (heading, what to do) overrides the default."""
    heading, message = text or (FORM_INVALID if form else PAGES.get(status_code, GENERIC))
    staff = getattr(request.state, "staff", None)
    ctx = {"me": staff, "heading": heading, "message": message, "fields": list(fields)}
    return templates.TemplateResponse(request, "error.html", ctx, status_code=status_code)


def install(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if not wants_html(request.url.path):
            return await http_exception_handler(request, exc)
        text = None
        if isinstance(exc, PageProblem):
            heading = (FORM_INVALID if exc.status_code == 422 else PAGES.get(exc.status_code, GENERIC))[0]
            text = (heading, str(exc.detail))
        resp = page(request, exc.status_code, text=text)
        for k, v in (exc.headers or {}).items():
            resp.headers.setdefault(k, v)
        return resp

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        if wants_html(request.url.path):
            form = any(e.get("loc", ("",))[0] == "body" for e in errors)
            return page(request, 422, fields=bad_fields(errors), form=form)
        # 422 with the field paths and messages, never the echoed input (it may hold a personnummer).
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in errors]
        return JSONResponse({"detail": detail}, status_code=422)


def server_error(request: Request) -> Response:
    """The 500 answer: no details (the server logs the traceback)."""
    if wants_html(request.url.path):
        return page(request, 500)
    return JSONResponse({"detail": "internal server error"}, status_code=500)
