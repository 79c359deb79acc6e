"""The patient's own monthly summary: what the letter (PDF) and the FHIR summary both say.

Pure: the readings come in as values per (kind, component) for the month and the month
before, and out comes a ``MonthlySummary`` with counts, mean/min/max, the trend against
the previous month in words, CGM time in range and the weight change. ``load`` is the thin
shell over ``queries.letters``; ``paragraph`` turns one kind into the plain Swedish the patient reads.

Trend rule (documented in clinic_api/README.md): the difference of this month's mean and
the previous month's mean of a component is compared with that component's noticeable
amount (``NOTICEABLE``, about 5 % of a typical value or a clinically noticeable change):
up to the amount "ungefär som förra månaden", up to twice the amount "något högre/lägre",
beyond that "högre/lägre". Without readings in the previous month there is no trend.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from clinic_api.labels import MONTHS_LONG, TZ, UNIT_DECIMALS, number, unit
from clinic_api.queries import letters

# What a month is called in the letter.
MONTH_NAMES = MONTHS_LONG

# CGM time in range (international consensus, Battelino 2019): 3.9-10.0 mmol/L inclusive.
TIR_LOW_MMOL_L = 3.9
TIR_HIGH_MMOL_L = 10.0


@dataclass(frozen=True, slots=True)
class LetterComponent:
    name: str
    unit: str  # UCUM, as stored
    label: str  # plain Swedish for the patient


@dataclass(frozen=True, slots=True)
class LetterKind:
    kind: str
    title: str
    noun: str  # "Du mätte {noun} …"
    components: tuple[LetterComponent, ...]


# The kinds a letter speaks of, in the order it does; symptoms and body composition stay out
# (scores and body fat are for the clinician's conversation, not a monthly table).
LETTER_KINDS: tuple[LetterKind, ...] = (
    LetterKind(
        "blood_pressure",
        "Blodtryck",
        "ditt blodtryck",
        (
            LetterComponent("systolic", "mm[Hg]", "Övre trycket"),
            LetterComponent("diastolic", "mm[Hg]", "Nedre trycket"),
            LetterComponent("pulse", "/min", "Puls"),
        ),
    ),
    LetterKind(
        "glucose_cgm",
        "Blodsocker (sensor)",
        "ditt blodsocker med sensorn",
        (LetterComponent("glucose_interstitial", "mmol/L", "Blodsocker"),),
    ),
    LetterKind(
        "glucose_capillary",
        "Blodsocker (stick i fingret)",
        "ditt blodsocker i fingret",
        (LetterComponent("glucose", "mmol/L", "Blodsocker"),),
    ),
    LetterKind("weight", "Vikt", "din vikt", (LetterComponent("weight", "kg", "Vikt"),)),
    LetterKind(
        "spo2",
        "Syre i blodet",
        "syret i blodet",
        (LetterComponent("spo2", "%", "Syremättnad"), LetterComponent("pulse", "/min", "Puls")),
    ),
    LetterKind(
        "spirometry",
        "Utandning (PEF)",
        "din utandning",
        (LetterComponent("pef", "L/min", "PEF"), LetterComponent("fev1", "L", "FEV1")),
    ),
    LetterKind(
        "temperature",
        "Kroppstemperatur",
        "din temperatur",
        (LetterComponent("temperature", "Cel", "Temperatur"),),
    ),
)
LETTER_KIND_BY_NAME: Mapping[str, LetterKind] = {k.kind: k for k in LETTER_KINDS}

# A difference of means up to this amount reads "ungefär som förra månaden" (see the module doc).
NOTICEABLE: Mapping[str, float] = {
    "systolic": 5.0,  # mmHg
    "diastolic": 3.0,  # mmHg
    "pulse": 5.0,  # /min
    "glucose_interstitial": 0.5,  # mmol/L
    "glucose": 0.5,  # mmol/L
    "weight": 1.0,  # kg
    "spo2": 2.0,  # percentage points
    "pef": 25.0,  # L/min, about 5 % of a typical adult PEF
    "fev1": 0.1,  # L
    "temperature": 0.3,  # °C
}

TREND_WORDS: Mapping[str, str] = {
    "same": "ungefär som förra månaden",
    "slightly_higher": "något högre än förra månaden",
    "higher": "högre än förra månaden",
    "slightly_lower": "något lägre än förra månaden",
    "lower": "lägre än förra månaden",
}


_MONTH_RE = re.compile(r"([0-9]{4})-([0-9]{2})")


class MonthError(ValueError):
    """A month parameter that is not YYYY-MM or lies in the future."""


@dataclass(frozen=True, slots=True, order=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str, *, now: dt.datetime) -> Month:
        # ASCII digits only: str.isdigit() also takes "²", which int() then refuses.
        match = _MONTH_RE.fullmatch(text.strip())
        if match is None:
            raise MonthError("month must be written YYYY-MM, e.g. 2026-11")
        m = cls(int(match[1]), int(match[2]))
        if not 1 <= m.month <= 12 or m.year < 2000:
            raise MonthError("month must be written YYYY-MM with a month 01-12 from the year 2000 on")
        if m > cls.containing(now):
            raise MonthError("month lies in the future")
        return m

    @classmethod
    def containing(cls, t: dt.datetime) -> Month:
        local = t.astimezone(TZ)
        return cls(local.year, local.month)

    @classmethod
    def last_complete(cls, now: dt.datetime) -> Month:
        """The month before the one ``now`` lies in (Europe/Stockholm)."""
        return cls.containing(now).previous()

    def previous(self) -> Month:
        return Month(self.year - 1, 12) if self.month == 1 else Month(self.year, self.month - 1)

    def next(self) -> Month:
        return Month(self.year + 1, 1) if self.month == 12 else Month(self.year, self.month + 1)

    @property
    def start(self) -> dt.datetime:
        """Local midnight of the 1st, as an aware datetime (DST handled by zoneinfo)."""
        return dt.datetime(self.year, self.month, 1, tzinfo=TZ)

    @property
    def end(self) -> dt.datetime:
        return self.next().start

    @property
    def days(self) -> int:
        return calendar.monthrange(self.year, self.month)[1]

    @property
    def name(self) -> str:
        """The month in words, e.g. "november 2026"."""
        return f"{MONTH_NAMES[self.month - 1]} {self.year}"

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True, slots=True)
class ComponentSummary:
    name: str
    label: str
    unit: str  # UCUM
    n: int
    mean: float
    min: float
    max: float
    previous_n: int
    previous_mean: float | None
    trend: str | None  # a TREND_WORDS key; None without readings the month before

    @property
    def trend_words(self) -> str | None:
        return None if self.trend is None else TREND_WORDS[self.trend]


@dataclass(frozen=True, slots=True)
class KindSummary:
    kind: str
    title: str
    noun: str
    readings: int  # measurements (one BP measurement = one reading of three values)
    planned: int | None  # from the care plan's schedule; None without one
    per_day: int | None
    components: tuple[ComponentSummary, ...]
    tir_pct: float | None = None  # CGM only
    previous_tir_pct: float | None = None
    weight_change_kg: float | None = None  # last minus first weighing of the month


@dataclass(frozen=True, slots=True)
class MonthlySummary:
    patient_id: uuid.UUID
    display_name: str
    unit_name: str
    month: Month
    kinds: tuple[KindSummary, ...]


def trend(component: str, mean: float, previous_mean: float | None) -> str | None:
    """The trend key of this month's mean against the previous month's (module doc's rule)."""
    if previous_mean is None:
        return None
    amount = NOTICEABLE.get(component, abs(previous_mean) * 0.05)
    diff = mean - previous_mean
    # Compared after rounding to a thousandth: 5.0 mmHg computed as 4.9999999 is 5.
    size = round(abs(diff), 3)
    if size <= amount:
        return "same"
    if size <= 2 * amount:
        return "slightly_higher" if diff > 0 else "slightly_lower"
    return "higher" if diff > 0 else "lower"


def time_in_range_pct(values: Sequence[float]) -> float | None:
    if not values:
        return None
    inside = sum(1 for v in values if TIR_LOW_MMOL_L <= v <= TIR_HIGH_MMOL_L)
    return inside / len(values) * 100


Series = Mapping[tuple[str, str], Sequence[float]]  # (kind, component) → values in time order


def summarise(
    *,
    patient_id: uuid.UUID,
    display_name: str,
    unit_name: str,
    month: Month,
    current: Series,
    previous: Series,
    readings: Mapping[str, int],
    schedule: Mapping[str, int],
    planned_days: int,
) -> MonthlySummary:
    """The month's summary. ``readings``: measurements per kind this month; ``schedule``:
    measurements per day per kind from the care plan; ``planned_days``: days of the month
    the schedule applies to (the whole month, or the days so far of the current one)."""
    kinds: list[KindSummary] = []
    for spec in LETTER_KINDS:
        comps: list[ComponentSummary] = []
        for c in spec.components:
            values = current.get((spec.kind, c.name), ())
            if not values:
                continue
            before = previous.get((spec.kind, c.name), ())
            mean = math.fsum(values) / len(values)
            prev_mean = math.fsum(before) / len(before) if before else None
            comps.append(
                ComponentSummary(
                    name=c.name,
                    label=c.label,
                    unit=c.unit,
                    n=len(values),
                    mean=mean,
                    min=min(values),
                    max=max(values),
                    previous_n=len(before),
                    previous_mean=prev_mean,
                    trend=trend(c.name, mean, prev_mean),
                )
            )
        per_day = schedule.get(spec.kind)
        if not comps and per_day is None:
            continue
        tir = prev_tir = change = None
        if spec.kind == "glucose_cgm":
            tir = time_in_range_pct(current.get((spec.kind, "glucose_interstitial"), ()))
            prev_tir = time_in_range_pct(previous.get((spec.kind, "glucose_interstitial"), ()))
        if spec.kind == "weight":
            w = current.get(("weight", "weight"), ())
            change = w[-1] - w[0] if len(w) >= 2 else None
        kinds.append(
            KindSummary(
                kind=spec.kind,
                title=spec.title,
                noun=spec.noun,
                readings=readings.get(spec.kind, 0),
                planned=per_day * planned_days if per_day is not None else None,
                per_day=per_day,
                components=tuple(comps),
                tir_pct=tir,
                previous_tir_pct=prev_tir,
                weight_change_kg=change,
            )
        )
    return MonthlySummary(patient_id, display_name, unit_name, month, tuple(kinds))


# The letter says "slag/min" where staff read "/min": a bare "/min" puzzles a patient.
LETTER_UNIT: Mapping[str, str] = {"/min": "slag/min"}
NBSP = "\u00a0"  # number and unit stay on one line


def value(v: float, unit_code: str) -> str:
    """A value with its unit in the letter's Swedish ("142 mmHg", "7,4 mmol/L")."""
    shown = LETTER_UNIT.get(unit_code) or unit(unit_code)
    return f"{number(v, UNIT_DECIMALS.get(unit_code, 1))}{NBSP}{shown}"


def times(n: int) -> str:
    return "1 gång" if n == 1 else f"{n} gånger"


def paragraph(k: KindSummary, month: Month) -> list[str]:
    """The sentences the patient reads about one kind, in plain Swedish."""
    month_word = MONTH_NAMES[month.month - 1]
    out: list[str] = []
    if k.readings == 0:
        out.append(f"Du mätte inte {k.noun} i {month_word}.")
    else:
        out.append(f"Du mätte {k.noun} {times(k.readings)} i {month_word}.")
    if k.planned is not None and k.per_day is not None:
        per = "1 mätning" if k.per_day == 1 else f"{k.per_day} mätningar"
        out.append(f"Enligt planen skulle du mäta {k.planned} gånger ({per} per dag).")
    for c in k.components:
        sentence = f"{c.label} var i medel {value(c.mean, c.unit)}"
        out.append(f"{sentence}, {c.trend_words}." if c.trend_words else f"{sentence}.")
    if k.tir_pct is not None:
        out.append(
            f"Blodsockret låg inom målområdet ({number(TIR_LOW_MMOL_L)}–{number(TIR_HIGH_MMOL_L)}{NBSP}mmol/L) "
            f"{number(k.tir_pct, 0)}{NBSP}% av tiden."
        )
        if k.previous_tir_pct is not None:
            out.append(f"Förra månaden var det {number(k.previous_tir_pct, 0)}{NBSP}% av tiden.")
    if k.weight_change_kg is not None:
        amount = round(k.weight_change_kg, 1)
        if amount == 0:
            out.append("Vikten var densamma i slutet av månaden som i början.")
        else:
            verb = "ökade" if amount > 0 else "minskade"
            out.append(f"Från första till sista vägningen {verb} vikten med {number(abs(amount))}{NBSP}kg.")
    return out


def table(k: KindSummary) -> list[tuple[str, str, str, str, str]]:
    """Rows of the kind's small table: value, count, mean, lowest, highest."""
    return [
        (c.label, str(c.n), value(c.mean, c.unit), value(c.min, c.unit), value(c.max, c.unit)) for c in k.components
    ]


def planned_days(month: Month, now: dt.datetime) -> int:
    """Days of the month the schedule counts: all of a past month, the days begun so far of
    the current one."""
    if now >= month.end:
        return month.days
    return max(0, (now.astimezone(TZ).date() - month.start.date()).days + 1)


def load(conn: psycopg.Connection[Any], patient: Mapping[str, Any], month: Month, now: dt.datetime) -> MonthlySummary:
    """Read the month and the one before for ``patient`` (a ``queries.patient_for`` row) and summarise."""
    kinds = [k.kind for k in LETTER_KINDS]
    current, previous = letters.month_values(
        conn, patient["id"], kinds, previous_start=month.previous().start, start=month.start, end=month.end
    )
    readings = letters.readings_per_kind(conn, patient["id"], kinds, month.start, month.end)
    schedule = letters.schedule_per_day(conn, patient["id"])
    return summarise(
        patient_id=patient["id"],
        display_name=patient["display_name"],
        unit_name=patient["unit_name"],
        month=month,
        current=current,
        previous=previous,
        readings=readings,
        schedule=schedule,
        planned_days=planned_days(month, now),
    )
