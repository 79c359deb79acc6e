"""Threshold replay: what proposed care-plan thresholds would have raised over stored data.

The engine and the alert lifecycle run for real (``evaluate_and_store``) at hourly steps over
the last N days of a care unit's readings, twice: with the care plans in force and with the
proposal merged into them. Both runs write into temporary tables that shadow ``alert``,
``alert_event``, ``alert_finding``, ``patient_message`` and ``care_plan_current`` on their
own connection (PostgreSQL looks in the session's temporary schema first), inside a
transaction that is rolled back: the live alerts are never read for update, locked or
changed, and nothing is sent to a patient.

Missing-data events are left out: their triage reads the gateways' *current* state, which
says nothing about the past.

The result compares, per event type, the staff alerts of both runs, and says for every
staff alert actually raised in the period whether the proposal would also have raised it
(caught) or not (missed).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from alerting.errors import AlertingError
from alerting.service import evaluate_and_store
from device_profiles.vocabulary import EventType

SHADOWED = ("alert", "alert_event", "alert_finding", "patient_message")
MAX_DAYS = 90
NOT_REPLAYED = frozenset({EventType.MISSING_DATA.value})

Proposal = Mapping[str, Mapping[str, Any]]


class ReplayError(AlertingError):
    """The replay cannot run as asked (unknown unit, bad period)."""


@dataclass(frozen=True)
class Raised:
    """A staff alert, live or replayed."""

    patient: str
    pseudonym: str
    event_type: str
    severity: str
    opened_at: datetime
    last_fired_at: datetime

    def overlaps(self, other: Raised, slack: timedelta) -> bool:
        return (
            self.patient == other.patient
            and self.event_type == other.event_type
            and self.opened_at - slack <= other.last_fired_at + slack
            and other.opened_at - slack <= self.last_fired_at + slack
        )


@dataclass
class ReplayResult:
    unit_id: str
    start: datetime
    end: datetime
    step_h: float
    patients: int
    patient_months: float
    proposal: dict[str, Any]
    # event type → staff alerts with the care plans in force / with the proposal
    current: dict[str, int] = field(default_factory=dict)
    proposed: dict[str, int] = field(default_factory=dict)
    # every staff alert actually raised in the period, with whether the proposal catches it
    past: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["start"], doc["end"] = self.start.isoformat(), self.end.isoformat()
        caught = sum(1 for p in self.past if p["caught"])
        doc["caught"], doc["missed"] = caught, len(self.past) - caught
        doc["by_event_type"] = [
            {
                "event_type": ev,
                "title": EventType(ev).label_sv if ev in EventType._value2member_map_ else ev,
                "current": self.current.get(ev, 0),
                "proposed": self.proposed.get(ev, 0),
                "current_per_patient_month": _rate(self.current.get(ev, 0), self.patient_months),
                "proposed_per_patient_month": _rate(self.proposed.get(ev, 0), self.patient_months),
            }
            for ev in sorted(set(self.current) | set(self.proposed))
        ]
        return doc


def _rate(n: int, patient_months: float) -> float | None:
    return round(n / patient_months, 3) if patient_months > 0 else None


def unit_patients(conn: psycopg.Connection[Any], unit_id: str, condition: str | None = None) -> list[str]:
    if conn.execute("SELECT 1 FROM care_unit WHERE id::text = %s", (unit_id,)).fetchone() is None:
        raise ReplayError(f"no care unit {unit_id}")
    rows = conn.execute(
        "SELECT p.id::text FROM patient p JOIN care_plan_current cp ON cp.patient_id = p.id "
        "WHERE p.active AND p.unit_id::text = %s AND (%s::text IS NULL OR %s = ANY(cp.conditions)) ORDER BY 1",
        (unit_id, condition, condition),
    ).fetchall()
    return [r[0] for r in rows]


def steps(start: datetime, end: datetime, step_h: float) -> list[float]:
    t, out = start.timestamp(), []
    while t <= end.timestamp():
        out.append(t)
        t += step_h * 3600
    return out


def run_alerts(
    conn: psycopg.Connection[Any],
    patient_ids: Sequence[str],
    times: Sequence[float],
    proposal: Proposal | None = None,
) -> list[Raised]:
    """Evaluate at each time on shadow tables and return the staff alerts raised; nothing is kept."""
    if not patient_ids:
        return []
    raised: list[Raised] = []
    try:
        with conn.transaction():
            _shadow(conn, patient_ids, proposal)
            for t in times:
                evaluate_and_store(conn, patient_ids, now=t, trigger="replay", triage=False)
            raised = _staff_alerts(conn, patient_ids, None, None)
            raise psycopg.Rollback
    finally:
        # Temporary tables went with the rollback; plans cached against them must go too.
        conn.execute("DEALLOCATE ALL")
    return raised


def replay(
    conn: psycopg.Connection[Any],
    unit_id: str,
    *,
    days: int,
    proposal: Proposal,
    condition: str | None = None,
    now: datetime | None = None,
    step_h: float = 1.0,
) -> ReplayResult:
    """Replay the unit's last ``days`` days with and without ``proposal`` (rule id → parameters).

    ``conn`` must be a connection of its own (its prepared statements are discarded).
    """
    if not 1 <= days <= MAX_DAYS:
        raise ReplayError(f"days must be 1 to {MAX_DAYS}")
    end = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    pids = unit_patients(conn, unit_id, condition)
    times = steps(start, end, step_h)
    past = [a for a in _staff_alerts(conn, pids, start, end) if a.event_type not in NOT_REPLAYED]
    current = run_alerts(conn, pids, times)
    proposed = run_alerts(conn, pids, times, proposal)
    slack = timedelta(hours=step_h)
    result = ReplayResult(
        unit_id=unit_id,
        start=start,
        end=end,
        step_h=step_h,
        patients=len(pids),
        patient_months=round(len(pids) * days / 30, 3),
        proposal={k: dict(v) for k, v in proposal.items()},
        current=_count(current),
        proposed=_count(proposed),
    )
    for a in past:
        result.past.append(
            {
                "pseudonym": a.pseudonym,
                "event_type": a.event_type,
                "severity": a.severity,
                "opened_at": a.opened_at.isoformat(),
                "caught": any(p.overlaps(a, slack) for p in proposed),
            }
        )
    return result


def _count(alerts: Sequence[Raised]) -> dict[str, int]:
    out: dict[str, int] = {}
    for a in alerts:
        if a.event_type not in NOT_REPLAYED:
            out[a.event_type] = out.get(a.event_type, 0) + 1
    return out


def _staff_alerts(
    conn: psycopg.Connection[Any], patient_ids: Sequence[str], start: datetime | None, end: datetime | None
) -> list[Raised]:
    rows = conn.execute(
        """
        SELECT a.patient_id::text, p.pseudonym, a.event_type, a.severity, a.opened_at, a.last_fired_at
        FROM alert a JOIN patient p ON p.id = a.patient_id
        WHERE a.patient_id = ANY(%s::uuid[]) AND a.shown_to_staff_at IS NOT NULL
          AND (%s::timestamptz IS NULL OR a.shown_to_staff_at >= %s)
          AND (%s::timestamptz IS NULL OR a.shown_to_staff_at <= %s)
        ORDER BY a.opened_at, a.id
        """,
        (list(patient_ids), start, start, end, end),
    ).fetchall()
    return [Raised(r[0], r[1], r[2], r[3], r[4], max(r[4], r[5])) for r in rows]


def _shadow(conn: psycopg.Connection[Any], patient_ids: Sequence[str], proposal: Proposal | None) -> None:
    for table in SHADOWED:
        conn.execute(f"CREATE TEMP TABLE {table} (LIKE public.{table} INCLUDING ALL) ON COMMIT DROP")
    conn.execute(
        "CREATE TEMP TABLE care_plan_current ON COMMIT DROP AS "
        "SELECT * FROM public.care_plan_current WHERE patient_id = ANY(%s::uuid[])",
        (list(patient_ids),),
    )
    for rule_id, params in (proposal or {}).items():
        conn.execute(
            "UPDATE care_plan_current SET thresholds = jsonb_set(thresholds, ARRAY[%s], "
            "coalesce(thresholds -> %s, '{}'::jsonb) || %s::jsonb)",
            (rule_id, rule_id, json.dumps(dict(params))),
        )
