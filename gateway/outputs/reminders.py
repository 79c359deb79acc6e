"""Local reminders and the receipt fallback as pure decisions over an injected clock.

The gateway's ``PatientChannel`` calls these every tick; the tests drive them with a fake
clock. Schedule times are ``HH:MM`` Europe/Stockholm (GatewayConfig); every comparison is
in UTC so a slot is right across DST (as ``gateway.logic.overdue_kinds``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Literal

from device_profiles.messages import ScheduledMeasurement
from gateway.logic import _parse_hhmm

# What to measure, as the patient says it: "Dags att mäta blodtrycket."
MEASURE_SV: dict[str, str] = {
    "blood_pressure": "mäta blodtrycket",
    "glucose_capillary": "mäta blodsockret",
    "glucose_cgm": "titta på blodsockret",
    "weight": "väga dig",
    "body_composition": "väga dig",
    "spo2": "mäta syremättnaden",
    "temperature": "mäta temperaturen",
    "spirometry": "blåsa i lungfunktionsmätaren",
    "symptoms": "svara på frågorna om hur du mår",
}
RECEIPT_FALLBACK_SV = "Mätningen är sparad och skickas senare."


def reminder_text(kind: str) -> str:
    return f"Dags att {MEASURE_SV.get(kind, 'mäta')}."


def escalation_text(kind: str) -> str:
    what = MEASURE_SV.get(kind, "mäta")
    return f"Du har inte hunnit {what}. Ring din vårdcentral eller mottagning om du inte kan mäta."


def slots_on(day: date, times_local: Sequence[str], tz: tzinfo) -> list[datetime]:
    """The UTC instants of a day's scheduled local times (unparseable ones skipped)."""
    out: list[datetime] = []
    for text in times_local:
        t = _parse_hhmm(text)
        if t is not None:
            out.append(datetime.combine(day, t, tzinfo=tz).astimezone(UTC))
    return sorted(out)


@dataclass(frozen=True)
class Reminder:
    kind: str
    slot: datetime  # UTC
    level: Literal["reminder", "contact_care"]

    @property
    def key(self) -> str:
        return f"{self.kind}@{self.slot:%Y%m%dT%H%MZ}:{self.level}"

    @property
    def text(self) -> str:
        return reminder_text(self.kind) if self.level == "reminder" else escalation_text(self.kind)


def due_reminders(
    schedule: Sequence[ScheduledMeasurement],
    now: datetime,
    last_reading: Mapping[str, datetime],
    *,
    tz: tzinfo,
    remind_after: timedelta,
    escalate_after: timedelta | None,
    early: timedelta,
    max_age: timedelta = timedelta(hours=12),
) -> list[Reminder]:
    """At most one reminder per scheduled kind: its latest slot of the last 24 h that is
    ``remind_after`` past with no reading of the kind from ``early`` before the slot on;
    ``contact_care`` once ``escalate_after`` has passed too (None: never). A schedule item's
    own ``remind_after_min`` / ``escalate_after_min`` (the care plan's) replace them. A slot older than
    ``max_age`` is not reminded of any more: last night's missed measurement is the care
    team's business (the platform's gap rules), not a morning alarm."""
    now_utc = now.astimezone(UTC)
    today = now_utc.astimezone(tz).date()
    out: list[Reminder] = []
    for item in schedule:
        if any(r.kind == item.kind for r in out):
            continue
        # The care plan's timing for this kind (via the config) wins over the gateway's.
        after = timedelta(minutes=item.remind_after_min) if item.remind_after_min is not None else remind_after
        escalate_at = escalate_after
        if item.escalate_after_min is not None:
            escalate_at = timedelta(minutes=item.escalate_after_min) if item.escalate_after_min > 0 else None
        slots = [
            s
            for day in (today - timedelta(days=1), today)
            for s in slots_on(day, item.times_local, tz)
            if s + after <= now_utc and now_utc - s <= max_age
        ]
        if not slots:
            continue
        slot = max(slots)
        last = last_reading.get(item.kind)
        if last is not None and last.astimezone(UTC) >= slot - early:
            continue
        escalate = escalate_at is not None and now_utc >= slot + escalate_at
        out.append(Reminder(item.kind, slot, "contact_care" if escalate else "reminder"))
    return out


@dataclass
class ReminderTracker:
    """Which reminders were shown, so each (kind, slot, level) is shown once and a reading
    of the kind takes its reminder back."""

    shown: dict[str, Reminder] = field(default_factory=dict)  # kind -> the reminder on show
    done: set[str] = field(default_factory=set)  # keys already shown

    def update(self, due: Sequence[Reminder]) -> tuple[list[Reminder], list[str]]:
        """(reminders to show now, kinds whose reminder is no longer due)."""
        due_kinds = {r.kind for r in due}
        cancelled = [k for k in self.shown if k not in due_kinds]
        for k in cancelled:
            del self.shown[k]
        new = [r for r in due if r.key not in self.done]
        for r in new:
            self.done.add(r.key)
            self.shown[r.kind] = r
        if len(self.done) > 512:  # keys of past days are never due again
            self.done = {r.key for r in self.shown.values()}
        return new, cancelled


@dataclass
class ReceiptWatch:
    """Readings waiting for the platform's receipt; the gateway's own receipt when it is late."""

    timeout: timedelta
    pending: dict[str, datetime] = field(default_factory=dict)  # kind -> deadline (UTC)

    def reading(self, kind: str, now: datetime) -> None:
        self.pending[kind] = now.astimezone(UTC) + self.timeout

    def receipt(self, kind: str | None) -> None:
        """A platform receipt: for its kind, or (no kind) for everything waiting."""
        if kind is None:
            self.pending.clear()
        else:
            self.pending.pop(kind, None)

    def overdue(self, now: datetime) -> list[str]:
        """Kinds whose receipt is late; each is reported once."""
        late = [k for k, deadline in self.pending.items() if now.astimezone(UTC) >= deadline]
        for k in late:
            del self.pending[k]
        return late
