"""Every Swedish word the staff pages show for a code: one table per vocabulary, and the formats.

Pages and templates take their labels from here (``LABELS`` is handed to every template),
so a title, a severity or a unit reads the same everywhere. Codes without a label are
shown as they are, never hidden.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from device_profiles.vocabulary import KINDS, EventType

TZ = ZoneInfo("Europe/Stockholm")

SEVERITY: Mapping[str, str] = {"critical": "Kritisk", "high": "Hög", "medium": "Medel", "low": "Låg", "info": "Info"}
STATUS: Mapping[str, str] = {
    "awaiting_confirmation": "Väntar på ommätning",
    "open": "Öppet",
    "acknowledged": "Kvitterat",
    "snoozed": "Vilande",
    "resolved": "Avslutat",
}
# The queue's status filter names groups of alerts, so it speaks in the plural.
STATUS_FILTER: Mapping[str, str] = {
    "open": "Öppna",
    "acknowledged": "Kvitterade",
    "snoozed": "Vilande",
    "awaiting_confirmation": "Väntar på ommätning",
}
# (arrow, words for a screen reader) of the last two readings of a series.
TREND: Mapping[str, tuple[str, str]] = {
    "up": ("↑", "stigande"),
    "down": ("↓", "sjunkande"),
    "flat": ("→", "oförändrat"),
}
CONDITION: Mapping[str, str] = {
    "diabetes_t1": "Diabetes typ 1",
    "diabetes_t2": "Diabetes typ 2",
    "heart_failure": "Hjärtsvikt",
    "copd": "KOL",
    "asthma": "Astma",
    "hypertension": "Hypertoni",
}
ROLE: Mapping[str, str] = {
    "nurse": "Sjuksköterska",
    "physician": "Läkare",
    "admin": "Administratör",
    "auditor": "Granskare",
}
COMPONENT: Mapping[str, str] = {
    "systolic": "Systoliskt blodtryck",
    "diastolic": "Diastoliskt blodtryck",
    "pulse": "Puls",
    "glucose_interstitial": "Glukos (CGM)",
    "glucose": "P-glukos (kapillärt)",
    "weight": "Vikt",
    "spo2": "Syremättnad (SpO2)",
    "pef": "PEF",
    "fev1": "FEV1",
    "temperature": "Kroppstemperatur",
}
KIND: Mapping[str, str] = {str(k): spec.display for k, spec in KINDS.items()}
EVENT_TYPE: Mapping[str, str] = {e.value: e.label_sv for e in EventType}
ROUTE: Mapping[str, str] = {
    "staff": "Monitoreringsteamet",
    "patient": "Patienten",
    "technical": "Teknisk support",
    "record": "Endast journal",
}
ACTION: Mapping[str, str] = {
    "acknowledge": "Kvittera",
    "escalate": "Eskalera",
    "resolve": "Avsluta",
    "snooze": "Skjut upp",
    "comment": "Kommentera",
    "assign": "Tilldela",
    "claim": "Ta ärendet",
    "unassign": "Lämna ärendet",
    "undo": "Ångra",
}
RESOLUTION_REASON: Mapping[str, str] = {
    "contacted_patient": "Kontakt med patienten",
    "no_action_needed": "Ingen åtgärd behövs",
    "referred": "Remitterad / hänvisad",
    "medication_changed": "Läkemedel ändrat",
    "device_problem": "Problem med mätaren",
    "measurement_error": "Felmätning",
    "not_confirmed": "Ej bekräftat vid ommätning",
    "condition_cleared": "Tillståndet har upphört",
}
# The alert's timeline (alert_event.event).
TIMELINE_EVENT: Mapping[str, str] = {
    "opened": "Larm skapat",
    "updated": "Nytt värde",
    "escalated_severity": "Allvarlighetsgrad höjd",
    "acknowledged": "Kvitterat",
    "commented": "Kommentar",
    "snoozed": "Vilande",
    "reopened": "Öppnat igen",
    "escalated": "Eskalerat",
    "resolution_suggested": "Föreslås avslutas",
    "resolved": "Avslutat",
    "resolve_undone": "Avslut ångrat",
    "confirmation_requested": "Patienten ombedd att mäta igen",
    "confirmed": "Bekräftat",
    "not_confirmed": "Ej bekräftat vid ommätning",
    "routed": "Dirigerat",
    "assigned": "Tilldelat",
    "unassigned": "Ej längre tilldelat",
    "handover": "Överlämning",
    "message_sent": "Meddelande skickat till patienten",
    "message_delivered": "Meddelandet nådde patienten",
    "message_seen": "Patienten har sett meddelandet",
    "message_expired": "Meddelandet gick ut",
}
# Rule names in clinical Swedish (ids and thresholds as in CLINICAL_RULES.md).
RULE: Mapping[str, str] = {
    "D1": "Hypoglykemi nivå 1 (CGM < 3,9 mmol/L i ≥ 15 min)",
    "D2": "Hypoglykemi nivå 2 (CGM < 3,0 mmol/L i ≥ 15 min)",
    "D3": "Långvarig hypoglykemi (CGM < 3,9 mmol/L > 120 min)",
    "D4": "Lågt kapillärt P-glukos",
    "D5": "Förväntad allvarlig hypoglykemi inom 20 min (CGM-prognos)",
    "D6": "Snabbt sjunkande glukos (CGM)",
    "D7": "Hyperglykemi (CGM > 13,9 mmol/L)",
    "D8": "14-dagars CGM-mått utanför mål (TIR/TBR/TAR/CV)",
    "D9": "För lite CGM-data för 14-dagarsmått",
    "D10": "Uppehåll i CGM-data",
    "HF1": "Viktökning > 2 kg på 3 dagar",
    "HF2": "Viktökning ≥ 1,5 kg på 1 dag",
    "HF3": "7-dagars medelvikt > torrvikt + 2 kg",
    "HF4": "Viktkurva utanför personlig baslinje (EWMA/CUSUM/MACD)",
    "HF5": "Lågt systoliskt blodtryck",
    "HF6": "Vilopuls utanför gräns eller stigande",
    "HF7": "Låg syremättnad (bekräftad)",
    "HF8": "Förvärrade hjärtsviktssymtom (dagligt formulär)",
    "HF9": "Saknad daglig vikt",
    "C1": "Låg syremättnad i vila (bekräftad)",
    "C2": "Syremättnaden sjunker mot 7-dagars baslinje",
    "C3": "Sjunkande syremättnad och stigande puls mot personlig baslinje",
    "C4": "Hög eller stigande vilopuls (KOL)",
    "C5": "FEV1/PEF under personligt medelvärde − 1,645 SD",
    "C6": "Stigande CAT-poäng",
    "C7": "≥ 2 förvärrade KOL-symtom ≥ 2 dagar i rad",
    "A1": "PEF < 80 % av personbästa (gul zon), bekräftat",
    "A2": "PEF < 60 % av personbästa",
    "A3": "PEF < 50 % av personbästa (röd zon)",
    "A4": "Morgon-PEF ≥ 20 % under baslinje två morgnar i rad",
    "A5": "Ökad dygnsvariation i PEF",
    "A6": "Ökande användning av akutinhalator",
    "H1": "Medelblodtryck hemma ≥ 135/85 under 7 dagar",
    "H2": "Behandlat hemblodtryck över målet i vårdplanen",
    "H3": "Mycket högt blodtryck (medel av dubbelmätning)",
    "H4": "Blodtryck ≥ 160/100 ≥ 2 dagar inom 7",
    "H5": "Lågt systoliskt blodtryck eller fall ≥ 20 mmHg",
    "H6": "För få hemblodtryck för veckomedel",
    "NODATA": "Schemalagda mätningar saknas",
    "NEWS2": "Partiell NEWS2 (hemma; ej validerad för hemmabruk)",
}
# UCUM codes as the wire carries them → how a Swedish clinician writes them.
UNIT: Mapping[str, str] = {
    "mm[Hg]": "mmHg",
    "Cel": "°C",
    "/min": "/min",
    "kg/m2": "kg/m²",
    "{count}": "st",
    "{score}": "poäng",
}


def label(table: Mapping[str, str], code: object) -> str:
    """The Swedish label of a code, or the code itself when the table has none."""
    key = "" if code is None else str(code)
    return table.get(key, key)


def unit(code: object) -> str:
    return label(UNIT, code)


def number(value: object, decimals: int = 1) -> str:
    """Swedish number: decimal comma, no-break space between thousands ("1 234,5"); "–" for none."""
    if value is None or isinstance(value, bool):
        return "–"
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(v):
        return "–"
    q = Decimal(repr(v)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    return f"{q:,}".replace(",", "\u00a0").replace(".", ",")


def ago(seconds: float | None) -> str:
    """How long ago, as staff say it: "nyss", "för 12 min sedan", "för 3 h 5 min sedan", "för 2 dygn 4 h sedan"."""
    if seconds is None:
        return ""
    s = max(0, int(seconds))
    if s < 60:
        return "nyss"
    if s < 3600:
        return f"för {s // 60} min sedan"
    if s < 86400:
        h, m = s // 3600, s % 3600 // 60
        return f"för {h} h {m} min sedan" if m else f"för {h} h sedan"
    d, h = s // 86400, s % 86400 // 3600
    return f"för {d} dygn {h} h sedan" if h else f"för {d} dygn sedan"


# Decimals a clinician reads per unit: whole mmHg, beats and percent; kilograms, mmol/L and
# degrees to one decimal; litres (FEV1) to two.
UNIT_DECIMALS: Mapping[str, int] = {
    "mm[Hg]": 0,
    "/min": 0,
    "%": 0,
    "L/min": 0,
    "cm": 0,
    "{score}": 0,
    "{count}": 0,
    "kg": 1,
    "kg/m2": 1,
    "mmol/L": 1,
    "Cel": 1,
    "L": 2,
}
# Censored sensor readings as the engine writes them (below or above the measuring range).
CENSORED: Mapping[str, str] = {"LOW": "under mätområdet", "HIGH": "över mätområdet"}


def reading(value: object, unit_code: object) -> str:
    """A value with its unit as staff read it ("85,2 kg", "142 mmHg"); censored values in words."""
    if isinstance(value, str) and value in CENSORED:
        return CENSORED[value]
    decimals = UNIT_DECIMALS.get(str(unit_code), 1)
    shown = unit(unit_code)
    return f"{number(value, decimals)} {shown}" if shown else number(value, decimals)


def percent(share: float | None) -> str:
    """A share 0..1 as whole Swedish percent ("75 %"); "–" for none."""
    return "–" if share is None else f"{number(share * 100, 0)} %"


def local_time(value: object, with_date: bool = True) -> str:
    """A timestamp in Europe/Stockholm, e.g. '3 dec 14:05' (or '14:05')."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if not isinstance(value, dt.datetime):
        return "" if value is None else str(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    t = value.astimezone(TZ)
    if not with_date:
        return t.strftime("%H:%M")
    return f"{t.day} {MONTHS[t.month - 1]} {t.year} {t:%H:%M}"


MONTHS = ("jan", "feb", "mar", "apr", "maj", "jun", "jul", "aug", "sep", "okt", "nov", "dec")

LABELS: Mapping[str, Any] = {
    "SEVERITY": SEVERITY,
    "STATUS": STATUS,
    "STATUS_FILTER": STATUS_FILTER,
    "TREND": TREND,
    "CONDITION": CONDITION,
    "ROLE": ROLE,
    "COMPONENT": COMPONENT,
    "KIND": KIND,
    "EVENT_TYPE": EVENT_TYPE,
    "ROUTE": ROUTE,
    "ACTION": ACTION,
    "RESOLUTION_REASON": RESOLUTION_REASON,
    "TIMELINE_EVENT": TIMELINE_EVENT,
    "RULE": RULE,
    "UNIT": UNIT,
}
