"""Swedish messages for the pages' forms: pydantic validation errors and the queries'
refusals, keyed by form field, so a form is shown again with the error next to the field
instead of the API's 422 JSON."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import HTTPException
from pydantic import ValidationError

from clinic_api import queries
from clinic_api.errors import NotFound

# The field's name as the form's label says it (lower case, used inside sentences).
FIELD: Mapping[str, str] = {
    "code": "kod",
    "name": "namn",
    "subject": "inloggnings-id",
    "display_name": "namn",
    "roles": "roller",
    "unit_ids": "vårdenheter",
    "unit_id": "vårdenhet",
    "personnummer": "personnummer",
    "conditions": "diagnoser",
    "id": "gateway-id",
    "serial": "serienummer",
    "gateway_id": "gateway",
    "dry_weight_kg": "torrvikt",
    "personal_best_pef": "personbästa PEF",
    "spo2_target": "SpO2-mål",
    "notes": "anledning till ändringen",
}
# Field-specific messages for a value of the wrong shape.
PATTERN: Mapping[str, str] = {
    "code": "Koden får bara innehålla bokstäver A–Z, siffror, bindestreck och understreck.",
    "id": "Gateway-id skrivs med små bokstäver, siffror och bindestreck (3–63 tecken), t.ex. gw-kit-0042.",
    "gateway_id": "Välj en registrerad gateway.",
}
# check_personnummer's reasons.
PERSONNUMMER: Mapping[str, str] = {
    "look like": "Personnumret ska skrivas ÅÅÅÅMMDD-NNNN, t.ex. 19121212-1212.",
    "impossible date": "Personnumret innehåller ett datum som inte finns.",
    "check digit": "Kontrollsiffran i personnumret stämmer inte.",
}
# The queries' refusals (HTTPException or NotFound detail) → (field, message).
REFUSAL: Mapping[str, tuple[str, str]] = {
    queries.admin.UNIT_EXISTS: ("code", "Det finns redan en vårdenhet med den koden."),
    queries.admin.STAFF_EXISTS: ("subject", "Det finns redan ett konto med det inloggnings-id:t."),
    queries.admin.UNKNOWN_UNIT: ("unit_ids", "Vårdenheten finns inte."),
    queries.admin.OWN_ADMIN_ROLE: (
        "roles",
        "Du kan inte ta bort din egen administratörsroll eller inaktivera dig själv.",
    ),
    queries.enrollment.NOT_MY_UNIT: ("unit_id", "Du kan bara skriva in patienter i dina egna vårdenheter."),
    queries.enrollment.PATIENT_EXISTS: ("personnummer", "En patient med det personnumret är redan inskriven."),
    queries.enrollment.KIT_TAKEN: ("gateway_id", "Gatewayen är redan tilldelad en annan patient."),
    queries.enrollment.NO_KIT: ("gateway_id", "Tilldela patienten en gateway först."),
    queries.enrollment.NO_KIT_TO_END: ("gateway_id", "Patienten har ingen gateway tilldelad."),
    queries.enrollment.GATEWAY_EXISTS: ("id", "Gateway-id eller serienummer finns redan registrerat."),
    "gateway not found": ("gateway_id", "Gatewayen finns inte. Registrera den först."),
}

Errors = dict[str, str]


def _message(field: str, kind: str, msg: str, ctx: Mapping[str, object], empty: bool) -> str:
    name = FIELD.get(field, field)
    if field == "personnummer":
        for key, text in PERSONNUMMER.items():
            if key in msg:
                return text
    if empty or kind in ("missing", "string_too_short") or (kind == "too_short" and ctx.get("min_length") == 1):
        if field in ("roles", "unit_id", "gateway_id"):
            return f"Välj {name}."
        return f"Fyll i {name}."
    if kind in ("string_too_long", "too_long"):
        return f"Fältet {name} får vara högst {ctx.get('max_length')} tecken."
    if kind == "string_pattern_mismatch":
        return PATTERN.get(field, f"Fältet {name} har fel format.")
    if kind in ("uuid_parsing", "uuid_type"):
        return f"Välj en giltig {name}."
    if kind in ("literal_error", "enum"):
        return f"Välj ett giltigt värde för {name}."
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than", "float_parsing", "finite_number"):
        return f"Värdet för {name} ligger utanför det tillåtna intervallet."
    return f"Fältet {name} är ogiltigt."


def from_validation(err: ValidationError) -> Errors:
    """The first error per form field (the model's top-level field, or ``form`` for the whole)."""
    out: Errors = {}
    for e in err.errors():
        loc = e.get("loc", ())
        field = str(loc[0]) if loc else "form"
        empty = e.get("input") == "" and len(loc) == 1  # a blank field, whatever rule it broke
        out.setdefault(field, _message(field, e.get("type", ""), str(e.get("msg", "")), e.get("ctx") or {}, empty))
    return out


def from_refusal(err: HTTPException | NotFound) -> Errors | None:
    """The Swedish form error for a known refusal, or None (then the caller lets it through)."""
    hit = REFUSAL.get(str(err.detail))
    return None if hit is None else {hit[0]: hit[1]}
