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

from device_profiles.vocabulary import KINDS, AlertStatus, EventType, Severity

TZ = ZoneInfo("Europe/Stockholm")

# From the vocabulary's own Swedish labels, most severe first (the order filters list them in).
SEVERITY: Mapping[str, str] = {s.value: s.label_sv for s in sorted(Severity, key=lambda s: -s.rank)}
STATUS: Mapping[str, str] = {s.value: s.label_sv for s in AlertStatus}
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
# audit_log.action, as the auditor's page and CSV export name it.
AUDIT_ACTION: Mapping[str, str] = {
    "read": "Läsning",
    "create": "Skapande",
    "update": "Ändring",
    "export": "Export",
    "search": "Sökning i loggen",
    "acknowledge": "Kvittering",
    "comment": "Kommentar",
    "snooze": "Uppskjutning",
    "escalate": "Eskalering",
    "resolve": "Avslut",
    "assign_gateway": "Gateway tilldelad",
    "end_gateway_assignment": "Gateway-tilldelning avslutad",
    "issue_enrollment_code": "Engångskod utfärdad",
    "gateway_enrolled": "Gateway ansluten med kod",
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
    "undo_resolve": "Ångra avslut",
    "handover": "Överlämning",
}
# The confirmation after a page action (post/redirect/get: ``?done=<code>``).
DONE: Mapping[str, str] = {
    "acknowledged": "Larmet är kvitterat.",
    "commented": "Kommentaren är sparad.",
    "snoozed": "Larmet är vilande.",
    "escalated": "Larmet är eskalerat.",
    "resolved": "Larmet avslutades.",
    "resolve_undone": "Avslutet är ångrat. Larmet är aktivt igen.",
    "claimed": "Du har tagit ärendet.",
    "assigned": "Ärendet är tilldelat.",
    "unassigned": "Du har lämnat ärendet. Ingen är tilldelad.",
    "handover": "Överlämningen är sparad.",
}
# Why a page action was refused (``?error=<code>``; queries.ActionRefused.code).
ACTION_ERROR: Mapping[str, str] = {
    "already_resolved": "Larmet är redan avslutat.",
    "already_acknowledged": "Larmet är redan kvitterat.",
    "already_assigned": "Ärendet är redan tilldelat den personen.",
    "not_assigned": "Ärendet är inte tilldelat någon.",
    "not_resolved": "Larmet är inte avslutat.",
    "comment_required": "Skriv en text först.",
    "reason_required": "Ange en anledning.",
    "recipient_required": "Välj en mottagare: en namngiven läkare eller en roll.",
    "unknown_recipient": "Mottagaren finns inte i larmets vårdenhet.",
    "snooze_past": "Vilotiden måste sluta i framtiden.",
    "snooze_too_long": "Ett larm kan vila högst 30 dygn.",
    "undo_expired": "Tiden för att ångra har gått ut (30 sekunder). Larmet förblir avslutat.",
    "undo_not_yours": "Bara den som avslutade larmet kan ångra.",
    "undo_unavailable": "Det här avslutet kan inte ångras.",
    "undo_superseded": "Ett nyare larm för samma händelse är redan öppet; avslutet kan inte ångras.",
}
# patient_message.level: what the patient was asked to do.
MESSAGE_LEVEL: Mapping[str, str] = {
    "receipt": "Kvitto",
    "measure_again": "Mät igen",
    "reminder": "Påminnelse",
    "contact_care": "Kontakta vården",
    "call_1177_or_112": "Ring 1177 eller 112",
}
# Rule parameters in the evidence (alerting's rule registry), without their unit: the unit
# is read from the name's suffix (``THRESHOLD_UNIT``).
THRESHOLD: Mapping[str, str] = {
    "threshold_mmol_l": "Gräns",
    "min_duration_min": "Minsta varaktighet",
    "type1_duration_min": "Minsta varaktighet vid typ 1",
    "high_below_mmol_l": "Hög under",
    "medium_below_mmol_l": "Medel under",
    "low_fall_mmol_l_min": "Låg vid fall",
    "medium_fall_mmol_l_min": "Medel vid fall",
    "predicted_at_or_below_mmol_l": "Prognos vid eller under",
    "horizon_min": "Prognoshorisont",
    "quiet_after_low_min": "Tyst efter låg",
    "expected_interval_min": "Förväntat intervall",
    "min_pct": "Minsta andel",
    "min_data_pct": "Minsta datamängd",
    "tir_min_pct": "TIR minst",
    "tbr_3_9_max_pct": "TBR < 3,9 högst",
    "tbr_3_0_max_pct": "TBR < 3,0 högst",
    "tar_10_max_pct": "TAR > 10 högst",
    "tar_13_9_max_pct": "TAR > 13,9 högst",
    "cv_max_pct": "CV högst",
    "info_after_h": "Info efter",
    "low_after_h": "Låg efter",
    "gain_kg": "Viktökning",
    "weight_gain_kg": "Viktökning",
    "excess_kg": "Över torrvikt",
    "high_below_mmhg": "Hög under",
    "medium_below_mmhg": "Medel under",
    "below_mmhg": "Under",
    "fall_mmhg": "Fall",
    "systolic_mmhg": "Systoliskt",
    "diastolic_mmhg": "Diastoliskt",
    "target_systolic_mmhg": "Mål systoliskt",
    "target_diastolic_mmhg": "Mål diastoliskt",
    "min_readings": "Minsta antal mätningar",
    "min_days": "Minsta antal dagar",
    "medium_above_bpm": "Medel över",
    "high_at_or_below_bpm": "Hög vid eller under",
    "high_at_or_above_bpm": "Hög vid eller över",
    "at_or_above_bpm": "Vid eller över",
    "rise_bpm": "Ökning",
    "high_at_or_below_pct": "Hög vid eller under",
    "medium_below_pct": "Medel under",
    "medium_below_pct_hypercapnic": "Medel under (hyperkapni)",
    "high_below_pct": "Hög under",
    "critical_below_pct": "Kritisk under",
    "drop_points": "Fall (procentenheter)",
    "min_score": "Minsta poäng",
    "n_sd": "Antal standardavvikelser",
    "medium_rise": "Medel vid ökning",
    "info_rise": "Info vid ökning",
    "below_pct": "Under (% av personbästa)",
    "band_floor_pct": "Zonens nedre gräns (% av personbästa)",
    "repeat_within_h": "Upprepat inom",
    "drop_pct": "Fall",
    "max_pct": "Högst",
    "rise_puffs": "Ökning",
    "days_per_week": "Dagar per vecka",
    "info_days": "Info efter",
    "low_days": "Låg efter",
    "recent_min": "Värden nyare än",
}
# Unit of a rule parameter by the suffix of its name (longest first).
THRESHOLD_UNIT: tuple[tuple[str, str], ...] = (
    ("_mmol_l_min", "mmol/L/min"),
    ("_mmol_l", "mmol/L"),
    ("_mmhg", "mmHg"),
    ("_bpm", "/min"),
    ("_pct_hypercapnic", "%"),
    ("_pct", "%"),
    ("_kg", "kg"),
    ("_min", "min"),
    ("_h", "h"),
    ("_days", "dygn"),
    ("_puffs", "doser"),
)
THRESHOLD_SOURCE: Mapping[str, str] = {"default": "standard", "care_plan": "vårdplan"}
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
# Threshold-replay requests (replay_request.status).
REPLAY_STATUS: Mapping[str, str] = {"queued": "I kö", "running": "Körs", "done": "Klar", "failed": "Misslyckades"}
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


# Why a stored reading does not count (observation.reject_reason starts with a code and a
# colon when ingest knows why): shown on the patient page, never hidden.
REJECT_REASON: Mapping[str, str] = {
    "probably_someone_else": "Troligen någon annan på vågen",
    "other_user": "Annan användare av delad mätare",
}


def reject_reason(text: object) -> str:
    """The Swedish reason a reading is not counted; the stored text when it has no known code."""
    reason = "" if text is None else str(text)
    code, sep, _rest = reason.partition(":")
    return REJECT_REASON[code] if sep and code in REJECT_REASON else reason or "Orimligt värde"


def label(table: Mapping[str, str], code: object) -> str:
    """The Swedish label of a code, or the code itself when the table has none."""
    key = "" if code is None else str(code)
    return table.get(key, key)


def unit(code: object) -> str:
    return label(UNIT, code)


def threshold_unit(name: str) -> str:
    """The unit of a rule parameter, from its name ("gain_kg" → "kg"); "" when it has none."""
    for suffix, u in THRESHOLD_UNIT:
        if name.endswith(suffix):
            return u
    return ""


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
# Month names written out (letters to patients, the enrolment code's expiry).
MONTHS_LONG = (
    "januari",
    "februari",
    "mars",
    "april",
    "maj",
    "juni",
    "juli",
    "augusti",
    "september",
    "oktober",
    "november",
    "december",
)

LABELS: Mapping[str, Any] = {
    "SEVERITY": SEVERITY,
    "STATUS": STATUS,
    "STATUS_FILTER": STATUS_FILTER,
    "TREND": TREND,
    "CONDITION": CONDITION,
    "ROLE": ROLE,
    "AUDIT_ACTION": AUDIT_ACTION,
    "COMPONENT": COMPONENT,
    "KIND": KIND,
    "EVENT_TYPE": EVENT_TYPE,
    "ROUTE": ROUTE,
    "ACTION": ACTION,
    "RESOLUTION_REASON": RESOLUTION_REASON,
    "TIMELINE_EVENT": TIMELINE_EVENT,
    "RULE": RULE,
    "UNIT": UNIT,
    "DONE": DONE,
    "ACTION_ERROR": ACTION_ERROR,
    "MESSAGE_LEVEL": MESSAGE_LEVEL,
    "THRESHOLD": THRESHOLD,
    "THRESHOLD_SOURCE": THRESHOLD_SOURCE,
    "REPLAY_STATUS": REPLAY_STATUS,
}
