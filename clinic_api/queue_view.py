"""What one alert card of the queue shows, computed from a queue row (no I/O).

The card answers at a glance: which event, how bad, the latest value and where it is
heading, why the platform raised it, and for how long it has waited. The page and its
polling fragment render the same cards, so both call ``card``.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from clinic_api import labels
from device_profiles.vocabulary import COMPONENTS, EventType

# The statuses a nurse works on; snoozed and awaiting ones are chosen explicitly.
ACTIVE_STATUSES = ("open", "acknowledged")
QUEUE_STATUSES = ("open", "acknowledged", "snoozed", "awaiting_confirmation")
# Relative change below which two readings count as the same (sensor noise, rounding).
FLAT_REL = 0.005


@dataclass(frozen=True)
class Latest:
    """The newest reading of the leading rule's series, with its direction."""

    label: str  # "Vikt"
    value: str  # "85,2 kg", "182/112 mmHg"
    trend: str | None  # a key of labels.TREND, None with fewer than two numeric readings


@dataclass(frozen=True)
class Filters:
    """The queue's filters, as GET parameters of both the page and its fragment."""

    statuses: tuple[str, ...] = ACTIVE_STATUSES
    severity: str = ""
    unit: uuid.UUID | None = None
    condition: str = ""
    mine: bool = False
    escalated: bool = False

    def query(self) -> str:
        """The canonical query string (defaults left out), so links and polls ask the same."""
        pairs: list[tuple[str, str]] = []
        if tuple(self.statuses) != ACTIVE_STATUSES:
            pairs += [("status", s) for s in self.statuses]
        if self.severity:
            pairs.append(("severity", self.severity))
        if self.unit is not None:
            pairs.append(("unit", str(self.unit)))
        if self.condition:
            pairs.append(("condition", self.condition))
        if self.mine:
            pairs.append(("mine", "1"))
        if self.escalated:
            pairs.append(("escalated", "1"))
        return urlencode(pairs)

    def url(self, path: str = "/ui/alerts") -> str:
        q = self.query()
        return f"{path}?{q}" if q else path


def title(row: Mapping[str, Any]) -> str:
    """The event's Swedish title; an alert from before events existed keeps its own title."""
    try:
        return EventType(str(row.get("event_type"))).label_sv
    except ValueError:
        return str(row.get("title") or labels.label(labels.RULE, row.get("rule_id")))


def _component(series: object) -> str:
    # The engine names series "<kind>.<component>" ("weight.weight"); older evidence just the component.
    return str(series).rsplit(".", 1)[-1]


def _numeric(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def trend(previous: object, last: object) -> str | None:
    a, b = _numeric(previous), _numeric(last)
    if a is None or b is None:
        return None
    if abs(b - a) <= FLAT_REL * max(abs(a), abs(b), 1e-9):
        return "flat"
    return "up" if b > a else "down"


def _readings(evidence: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    rs = evidence.get("readings")
    if not isinstance(rs, list):
        return []
    return [r for r in rs if isinstance(r, Mapping) and "series" in r and "value" in r]


def latest(evidence: Mapping[str, Any]) -> Latest | None:
    """The leading rule's newest reading and the trend from the one before it in the same series.

    A blood pressure shows as systolic/diastolic when both are in the evidence; its trend
    follows the systolic value.
    """
    readings = _readings(evidence)
    if not readings:
        return None
    by_comp: dict[str, list[Mapping[str, Any]]] = {}
    for r in readings:
        by_comp.setdefault(_component(r["series"]), []).append(r)
    for rs in by_comp.values():
        rs.sort(key=lambda r: str(r.get("at", "")))
    if "systolic" in by_comp and "diastolic" in by_comp:
        sys_, dia = by_comp["systolic"], by_comp["diastolic"]
        sv, dv = sys_[-1]["value"], dia[-1]["value"]
        if _numeric(sv) is not None and _numeric(dv) is not None:
            value = f"{labels.number(sv, 0)}/{labels.number(dv, 0)}\u00a0{labels.unit('mm[Hg]')}"
        else:
            value = labels.reading(sv, "mm[Hg]")
        return Latest("Blodtryck", value, trend(sys_[-2]["value"], sv) if len(sys_) > 1 else None)
    newest = max(readings, key=lambda r: str(r.get("at", "")))
    comp = _component(newest["series"])
    rs = by_comp[comp]
    spec = COMPONENTS.get(comp)
    return Latest(
        labels.label(labels.COMPONENT, comp),
        labels.reading(newest["value"], spec.unit if spec else ""),
        trend(rs[-2]["value"], rs[-1]["value"]) if len(rs) > 1 else None,
    )


def reading_rows(evidence: Mapping[str, Any], last: int = 8) -> list[dict[str, str]]:
    """The evidence's newest readings in Swedish: what, value with unit, local time."""
    out = []
    for r in sorted(_readings(evidence), key=lambda r: str(r.get("at", "")))[-last:]:
        comp = _component(r["series"])
        spec = COMPONENTS.get(comp)
        out.append(
            {
                "label": labels.label(labels.COMPONENT, comp),
                "value": labels.reading(r["value"], spec.unit if spec else ""),
                "at": labels.local_time(r.get("at")),
            }
        )
    return out


def why(evidence: Mapping[str, Any], rule_id: str) -> list[str]:
    """The Swedish names of the rules that raised the event, leading rule first, each once."""
    ids: list[str] = []
    lead = evidence.get("rule") or evidence.get("rule_id") or rule_id
    if lead:
        ids.append(str(lead))
    members = evidence.get("rules")
    if isinstance(members, Sequence) and not isinstance(members, str):
        for m in members:
            if isinstance(m, Mapping) and m.get("rule"):
                ids.append(str(m["rule"]))
    seen: dict[str, None] = dict.fromkeys(ids)
    return [labels.label(labels.RULE, r) for r in seen]


# The row's fields a card shows; a change in any of them is a changed card.
_VERSIONED = (
    "status",
    "severity",
    "title",
    "event_type",
    "rule_id",
    "updated_at",
    "last_fired_at",
    "fire_count",
    "latest_value",
    "evidence",
    "snoozed_until",
    "acknowledged_at",
    "escalation_level",
    "resolution_suggested_at",
    "assigned_to",
    "escalated_to",
    "escalated_to_role",
    "patient_name",
)


def version(row: Mapping[str, Any]) -> str:
    """A short digest of what the card shows, except its age (which moves every minute)."""
    data = json.dumps({k: row.get(k) for k in _VERSIONED}, sort_keys=True, default=str)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def card(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row with what its card needs: title, latest value and trend, why, age, version."""
    evidence = row.get("evidence") if isinstance(row.get("evidence"), Mapping) else {}
    assert isinstance(evidence, Mapping)
    return {
        **row,
        "card_title": title(row),
        "latest": latest(evidence),
        "why": why(evidence, str(row.get("rule_id") or "")),
        "readings": reading_rows(evidence),
        "ago": labels.ago(row.get("age_s")),
        "version": version(row),
    }
