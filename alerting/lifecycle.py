"""The alert lifecycle in the database (statuses and events as in alerting/README.md).

Statuses: open → acknowledged → resolved; snoozed (until a time) → open again when the
snooze ends; awaiting_confirmation (a spot value waiting for the patient's repeat) → open,
or resolved as not confirmed. One non-resolved alert per (patient, event type): while the
condition lasts the alert is updated (latest value, fire_count, severity escalation),
never duplicated. A finding whose occurrence is no newer than what the alert already
holds changes nothing, so re-evaluating the same data is idempotent.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from alerting import events, metrics
from alerting.cohort import Cohort
from alerting.engine import Finding
from alerting.rules import REGISTRY
from alerting.series import Dataset
from device_profiles.vocabulary import EventType, Route, Severity

log = logging.getLogger(__name__)

RANK = {s.value: s.rank for s in Severity}
# A message to the patient that the gateway could not show within this long is stale.
MESSAGE_TTL = timedelta(hours=12)
EVENT_TYPES = frozenset(e.value for e in EventType)
# A repeat measured before the deadline may reach us a little later (gateway → ingest).
CONFIRM_GRACE = timedelta(minutes=2)
# A spot value first seen this long after it was measured (a backlog upload) is not worth a
# "measure again" any more: staff see it at once.
CONFIRM_STALE = timedelta(hours=2)


@dataclass
class LifecycleStats:
    opened: int = 0
    updated: int = 0
    escalated_severity: int = 0
    resolution_suggested: int = 0
    reopened_after_snooze: int = 0
    escalated: int = 0
    messages: int = 0
    confirmation_requested: int = 0
    confirmed: int = 0
    not_confirmed: int = 0


def _ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _event(
    conn: psycopg.Connection[Any],
    alert_id: int,
    event: str,
    at: datetime,
    *,
    details: dict[str, Any] | None = None,
    staff_id: str | None = None,
    comment: str | None = None,
) -> None:
    conn.execute(
        "INSERT INTO alert_event (alert_id, event, at, staff_id, comment, details) VALUES (%s, %s, %s, %s, %s, %s)",
        (alert_id, event, at, staff_id, comment, json.dumps(details or {})),
    )


def apply_findings(
    conn: psycopg.Connection[Any],
    cohort: Cohort,
    findings: Sequence[Finding],
    now: float,
    *,
    rules: Iterable[str] | None = None,
    data: Dataset | None = None,
) -> LifecycleStats:
    """Bring the alerts of the cohort's patients in line with a fresh evaluation (one transaction).

    Every finding is kept per rule (``alert_finding``) and routed; the staff-routed ones are
    grouped into one alert per (patient, event type) (see ``events.py``). ``data`` (the
    readings evaluated) lets a spot value wait for a repeat measurement before staff see it
    (``events.CONFIRMABLE``); without it every event opens at once.
    """
    stats = LifecycleStats()
    rule_ids = list(rules if rules is not None else REGISTRY)
    at_now = _ts(now)
    conditions_of = _conditions_of(cohort)
    routing = cohort.routing
    routed = [
        (f, events.route(f.rule_id, f.severity, routing.get(f.patient), f.value, conditions_of.get(f.patient, ())))
        for f in findings
    ]
    staff = [f for f, r in routed if r is Route.STAFF]
    # A patient-routed finding of an event that also reaches staff (a level 1 low beside a
    # level 2 one) is part of that card's evidence; the patient still gets their message.
    told = [f for f, r in routed if r is Route.PATIENT]
    grouped = events.group_events(staff, conditions_of, companions=told)
    members = _members(staff, conditions_of)
    within_min, _ = cohort.param("confirmation", "within_min", events.CONFIRM_WITHIN_MIN)
    index_of = {pid: i for i, pid in enumerate(cohort.patient_ids)}
    event_types = sorted({events.event_type(r, c) for r in rule_ids for c in (("copd",), ())})
    with conn.transaction():
        messages = _store_findings(conn, cohort, routed, at_now, rule_ids, conditions_of=conditions_of)
        rows = conn.execute(
            """
            SELECT id, patient_id::text, event_type, status, severity, last_fired_at, snoozed_until,
                   resolution_suggested_at, confirm_by, rule_id
            FROM alert WHERE status <> 'resolved' AND patient_id = ANY(%s::uuid[]) AND event_type = ANY(%s)
            FOR UPDATE
            """,
            (cohort.patient_ids, event_types),
        ).fetchall()
        open_by_key = {(r[1], r[2]): r for r in rows}
        # An occurrence already covered by a resolved alert must not reopen it: re-firing
        # needs an occurrence newer than the last resolution.
        resolved = {
            (r[0], r[1]): r[2]
            for r in conn.execute(
                "SELECT patient_id::text, event_type, max(resolved_at) FROM alert "
                "WHERE status = 'resolved' AND patient_id = ANY(%s::uuid[]) GROUP BY 1, 2",
                (cohort.patient_ids,),
            )
        }
        for key, row in list(open_by_key.items()):
            if row[3] != "awaiting_confirmation":
                continue
            i = index_of[key[0]]
            ev = EventType(key[1]) if key[1] in EVENT_TYPES else None
            g = grouped.get((i, ev)) if ev is not None else None
            outcome = _judge_waiting(row, g, members.get((i, ev), []) if ev else [], cohort, data, i=i, at_now=at_now)
            if outcome is None:
                continue
            verdict, repeat_at = outcome
            if verdict == "not_confirmed":
                _not_confirmed(conn, row[0], at_now, repeat_at)
                stats.not_confirmed += 1
                del open_by_key[key]
                resolved[key] = at_now
            else:
                _confirmed(conn, row[0], at_now, verdict, repeat_at)
                if metrics.live():
                    metrics.STAFF_ALERTS.labels(key[1]).inc()
                stats.confirmed += 1
                open_by_key[key] = (*row[:3], "open", *row[4:])
        found: set[tuple[str, str]] = set()
        opening: list[tuple[Finding, EventType, psycopg.Cursor[Any]]] = []
        waiting: list[tuple[str, EventType, Finding]] = []
        # Pipeline mode: the statements below need no answer before the next one is sent,
        # so a sweep opening thousands of alerts costs a few round trips, not thousands.
        with conn.pipeline():
            for (_, event), f in grouped.items():
                pid = cohort.patient_ids[f.patient]
                key = (pid, event.value)
                found.add(key)
                fired_at = _ts(f.at)
                row = open_by_key.get(key)
                if row is None:
                    last_resolved = resolved.get(key)
                    if last_resolved is None or fired_at > last_resolved:
                        mode = _confirmation_mode(
                            f, members[(f.patient, event)], cohort, data, within_min=within_min, at_now=at_now
                        )
                        cur = _open(conn, cohort, f, event, pid=pid, fired_at=fired_at, at_now=at_now, mode=mode)
                        if mode.status == "awaiting_confirmation":
                            waiting.append((pid, event, f))
                            stats.confirmation_requested += 1
                        elif mode.status == "resolved":
                            stats.not_confirmed += 1
                        else:
                            opening.append((f, event, cur))
                    continue
                alert_id, _, _, status, severity, last_fired_at, _, _, _, _ = row
                if status == "awaiting_confirmation":
                    continue  # waits for the repeat (judged above)
                if fired_at <= last_fired_at:
                    continue  # the same occurrence as last time: nothing new
                if (
                    status == "acknowledged"
                    and event in events.EPISODIC_EVENTS
                    and _ts(f.since) > last_fired_at + timedelta(seconds=_hysteresis_s(key[1]))
                ):
                    # A new episode after the acknowledged one had cleared (a second hypoglycaemia
                    # the next day): staff acted on the first, so the second is a new alert, not a
                    # silent update of a card they have already dealt with.
                    _close_for_new_episode(conn, alert_id, at_now, fired_at)
                    opening.append((f, event, _open(conn, cohort, f, event, pid=pid, fired_at=fired_at, at_now=at_now)))
                    continue
                new_sev = severity
                escalate = RANK[f.severity] > RANK[severity]
                if escalate:
                    new_sev = f.severity
                # A worse condition needs a fresh look: an acknowledged alert goes back to open.
                new_status = "open" if escalate and status == "acknowledged" else status
                conn.execute(
                    """
                    UPDATE alert SET latest_value = %s, fire_count = fire_count + 1, last_fired_at = %s,
                           updated_at = %s, evidence = %s, severity = %s, status = %s, rule_id = %s,
                           resolution_suggested_at = NULL
                    WHERE id = %s
                    """,
                    (
                        _num(f.value),
                        fired_at,
                        at_now,
                        json.dumps(f.evidence),
                        new_sev,
                        new_status,
                        f.rule_id,
                        alert_id,
                    ),
                )
                _event(
                    conn,
                    alert_id,
                    "updated",
                    at_now,
                    details={"value": _num(f.value), "at": fired_at.isoformat(), "rule": f.rule_id},
                )
                stats.updated += 1
                if escalate:
                    _event(conn, alert_id, "escalated_severity", at_now, details={"from": severity, "to": new_sev})
                    stats.escalated_severity += 1
            # Condition clear for the event's hysteresis period → suggest resolution (staff decide).
            for key, row in open_by_key.items():
                if key in found or row[7] is not None or row[3] == "awaiting_confirmation":
                    continue
                if at_now - row[5] >= timedelta(seconds=_hysteresis_s(row[2])):
                    conn.execute(
                        "UPDATE alert SET resolution_suggested_at = %s, updated_at = %s WHERE id = %s",
                        (at_now, at_now, row[0]),
                    )
                    _event(conn, row[0], "resolution_suggested", at_now, details={"clear_since": row[5].isoformat()})
                    stats.resolution_suggested += 1
        # After the pipeline has synced: which inserts happened (a concurrent evaluator may have won).
        for f, opened_event, cur in opening:
            if cur.fetchone() is not None:
                stats.opened += 1
                if metrics.live():
                    metrics.STAFF_ALERTS.labels(opened_event.value).inc()
                log.info(
                    "alert opened rule=%s severity=%s patient=%s", f.rule_id, f.severity, _pseudo(cohort, f.patient)
                )
        _link_findings(conn, cohort, staff, conditions_of)
        # After the alerts exist, so a message about a staff event is on that event's timeline.
        for pid, msg, msg_event in messages:
            _queue_message(conn, pid, msg, at_now, msg_event)
        stats.messages += len(messages)
        for pid, event, f in waiting:
            within = timedelta(minutes=float(within_min[f.patient]))
            msg = events.measure_again_message(m.rule_id for m in members[(f.patient, event)])
            _queue_message(conn, pid, msg, at_now, event, expires=at_now + within)
            stats.messages += 1
    return stats


def _close_for_new_episode(conn: psycopg.Connection[Any], alert_id: int, at_now: datetime, new_at: datetime) -> None:
    conn.execute(
        "UPDATE alert SET status = 'resolved', resolved_at = %s, resolution_reason = 'condition_cleared', "
        "snoozed_until = NULL, updated_at = %s WHERE id = %s",
        (at_now, at_now, alert_id),
    )
    _event(
        conn,
        alert_id,
        "resolved",
        at_now,
        details={"by": "platform", "reason": "new episode", "new_at": new_at.isoformat()},
    )


def _conditions_of(cohort: Cohort) -> dict[int, tuple[str, ...]]:
    """Each patient's conditions (only the event mapping needs them, and only for a few rules)."""
    out: dict[int, list[str]] = {}
    for c, mask in cohort.conditions.items():
        for i in mask.nonzero()[0]:
            out.setdefault(int(i), []).append(c)
    return {i: tuple(cs) for i, cs in out.items()}


def _hysteresis_s(event_type: str) -> float:
    if event_type in EVENT_TYPES:
        return events.hysteresis_s(EventType(event_type))
    rule = REGISTRY.get(event_type)  # alerts raised before events existed: one per rule
    return rule.hysteresis_s if rule else 0.0


def _store_findings(
    conn: psycopg.Connection[Any],
    cohort: Cohort,
    routed: Sequence[tuple[Finding, Route]],
    at_now: datetime,
    rule_ids: Sequence[str],
    *,
    conditions_of: dict[int, tuple[str, ...]],
) -> list[tuple[str, events.PatientMessage, EventType | None]]:
    """Keep every rule's finding (one current row per patient and rule); say which messages to send.

    A message goes out when a finding first appears or rises in severity, so a condition that
    lasts does not repeat it at every evaluation. Returned: (patient, message, the staff event
    it belongs to, if any).
    """
    current = {
        (r[1], r[2]): r
        for r in conn.execute(
            "SELECT id, patient_id::text, rule_id, severity, last_at FROM alert_finding "
            "WHERE cleared_at IS NULL AND patient_id = ANY(%s::uuid[]) AND rule_id = ANY(%s) FOR UPDATE",
            (cohort.patient_ids, list(rule_ids)),
        )
    }
    seen: set[tuple[str, str]] = set()
    messages: list[tuple[str, events.PatientMessage, EventType | None]] = []
    with conn.pipeline():
        for f, r in routed:
            pid = cohort.patient_ids[f.patient]
            key = (pid, f.rule_id)
            seen.add(key)
            at = _ts(f.at)
            row = current.get(key)
            rises = row is None or RANK[f.severity] > RANK[row[3]]
            if row is None:
                conn.execute(
                    "INSERT INTO alert_finding (patient_id, rule_id, route, severity, first_at, last_at, "
                    "latest_value, evidence) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    (pid, f.rule_id, r.value, f.severity, at, at, _num(f.value), json.dumps(f.evidence)),
                )
            elif at > row[4] or rises:
                conn.execute(
                    "UPDATE alert_finding SET last_at = greatest(last_at, %s), fire_count = fire_count + 1, "
                    "severity = %s, route = %s, latest_value = %s, evidence = %s WHERE id = %s",
                    (at, f.severity, r.value, _num(f.value), json.dumps(f.evidence), row[0]),
                )
            msg = events.patient_message_for(f.rule_id, f.severity) if rises else None
            if msg is not None and (r is Route.PATIENT or f.severity == "critical"):
                event = events.event_type(f.rule_id, conditions_of.get(f.patient, ())) if r is Route.STAFF else None
                messages.append((pid, msg, event))
        # A finding that stopped for longer than its rule's hysteresis is cleared.
        for key, row in current.items():
            if key in seen:
                continue
            rule = REGISTRY.get(key[1])
            if rule is not None and at_now - row[4] >= timedelta(seconds=rule.hysteresis_s):
                conn.execute("UPDATE alert_finding SET cleared_at = %s WHERE id = %s", (at_now, row[0]))
    return messages


def _queue_message(
    conn: psycopg.Connection[Any],
    pid: str,
    msg: events.PatientMessage,
    at_now: datetime,
    event: EventType | None,
    *,
    expires: datetime | None = None,
) -> None:
    """A message to the patient's current gateway (delivered by the feedback publisher)."""
    conn.execute(
        """
        INSERT INTO patient_message (patient_id, gateway_id, alert_id, level, kind, message_sv, created_at,
                                     expires_at)
        SELECT %(pid)s, (SELECT gateway_id FROM gateway_assignment
                         WHERE patient_id = %(pid)s AND valid @> %(now)s::timestamptz LIMIT 1),
               (SELECT id FROM alert WHERE patient_id = %(pid)s AND event_type = %(event)s AND status <> 'resolved'),
               %(level)s, %(kind)s, %(text)s, %(now)s, %(expires)s
        """,
        {
            "event": event.value if event else None,
            "pid": pid,
            "level": msg.level.value,
            "kind": msg.kind,
            "text": msg.text_sv,
            "now": at_now,
            "expires": expires or at_now + MESSAGE_TTL,
        },
    )


def _link_findings(
    conn: psycopg.Connection[Any], cohort: Cohort, staff: Sequence[Finding], conditions_of: dict[int, tuple[str, ...]]
) -> None:
    """Point each staff-routed finding at the open alert of its event."""
    if not staff:
        return
    pids, rule_ids, types = [], [], []
    for f in staff:
        pids.append(cohort.patient_ids[f.patient])
        rule_ids.append(f.rule_id)
        types.append(events.event_type(f.rule_id, conditions_of.get(f.patient, ())).value)
    conn.execute(
        """
        UPDATE alert_finding af SET alert_id = a.id
        FROM unnest(%s::uuid[], %s::text[], %s::text[]) AS k(patient_id, rule_id, event_type)
        JOIN alert a ON a.patient_id = k.patient_id AND a.event_type = k.event_type AND a.status <> 'resolved'
        WHERE af.patient_id = k.patient_id AND af.rule_id = k.rule_id AND af.cleared_at IS NULL
          AND af.alert_id IS DISTINCT FROM a.id
        """,
        (pids, rule_ids, types),
    )


def _num(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _open(
    conn: psycopg.Connection[Any],
    cohort: Cohort,
    f: Finding,
    event: EventType,
    *,
    pid: str,
    fired_at: datetime,
    at_now: datetime,
    mode: Opening | None = None,
) -> psycopg.Cursor[Any]:
    """Insert the alert and its events in one statement; the cursor returns the id if inserted.

    ``mode`` says whether it opens in the staff queue, waits for a repeat measurement, or
    closes at once because the repeat already taken was normal.
    """
    mode = mode or Opening()
    rule = REGISTRY[f.rule_id]
    condition = next((c for c in rule.conditions if c in cohort.conditions and cohort.conditions[c][f.patient]), None)
    cur = conn.cursor()
    cur.execute(
        """
        WITH a AS (
            INSERT INTO alert (patient_id, rule_id, event_type, condition, status, severity, title, opened_at,
                               updated_at, shown_to_staff_at, last_fired_at, fire_count, latest_value, evidence,
                               confirm_by, resolved_at, resolution_reason)
            VALUES (%(pid)s, %(rule)s, %(event)s, %(cond)s, %(status)s, %(sev)s, %(title)s, %(now)s, %(now)s,
                    CASE WHEN %(status)s = 'open' THEN %(now)s END,
                    %(fired)s, 1, %(value)s, %(evidence)s, %(confirm_by)s,
                    CASE WHEN %(status)s = 'resolved' THEN %(now)s END,
                    CASE WHEN %(status)s = 'resolved' THEN 'not_confirmed' END)
            ON CONFLICT (patient_id, event_type) WHERE status <> 'resolved' DO NOTHING
            RETURNING id
        )
        INSERT INTO alert_event (alert_id, event, at, details)
        SELECT id, e.event, %(now)s, e.details::jsonb FROM a,
               (VALUES (1, 'opened', %(details)s), (2, %(then)s, %(then_details)s)) AS e(n, event, details)
        WHERE e.event IS NOT NULL
        ORDER BY e.n
        RETURNING alert_id
        """,
        {
            "pid": pid,
            "rule": f.rule_id,
            "event": event.value,
            "cond": condition,
            "sev": f.severity,
            "title": event.label_sv,
            "now": at_now,
            "fired": fired_at,
            "value": _num(f.value),
            "evidence": json.dumps(f.evidence),
            "details": json.dumps({"severity": f.severity, "value": _num(f.value), "rule": f.rule_id}),
            "status": mode.status,
            "confirm_by": mode.confirm_by,
            "then": mode.event,
            "then_details": json.dumps(mode.details),
        },
    )
    return cur


@dataclass(frozen=True)
class Opening:
    """How a new alert starts: in the queue, waiting for a repeat, or closed by a normal repeat."""

    status: str = "open"
    confirm_by: datetime | None = None
    event: str | None = None  # a second timeline event after 'opened'
    details: dict[str, Any] | None = None


def _members(
    staff: Sequence[Finding], conditions_of: dict[int, tuple[str, ...]]
) -> dict[tuple[int, EventType], list[Finding]]:
    out: dict[tuple[int, EventType], list[Finding]] = {}
    for f in staff:
        out.setdefault((f.patient, events.event_type(f.rule_id, conditions_of.get(f.patient, ()))), []).append(f)
    return out


def _first_reading_after(data: Dataset | None, i: int, keys: Sequence[str], t0: float) -> float | None:
    """The first reading of any of these series measured after ``t0`` (the repeat), if any."""
    first: float | None = None
    for key in keys:
        s = (data or {}).get(key)
        if s is None or len(s) == 0:
            continue
        a, b = (int(x) for x in s.pat.searchsorted([i, i + 1]))
        k = a + int(s.t[a:b].searchsorted(t0, side="right"))
        if k < b and (first is None or float(s.t[k]) < first):
            first = float(s.t[k])
    return first


def _confirmation_mode(
    f: Finding, members: Sequence[Finding], cohort: Cohort, data: Dataset | None, *, within_min: Any, at_now: datetime
) -> Opening:
    """Whether a new event waits for a repeat measurement (events.CONFIRMABLE, care plan)."""
    within = timedelta(minutes=float(within_min[f.patient]))
    if data is None or within <= timedelta(0) or not events.confirmable(members, cohort.confirm_rules.get(f.patient)):
        return Opening()
    # Judged from the first abnormal value in the lookback: a repeat may already be here
    # (two sessions in one upload, or a second session before this evaluation).
    first = f.earliest
    repeat = _first_reading_after(data, f.patient, events.repeat_series(m.rule_id for m in members), first)
    if repeat is not None:
        details = {"by": "repeat", "repeat_at": _ts(repeat).isoformat()}
        if f.latest > first:
            return Opening(event="confirmed", details=details)
        return Opening(status="resolved", event="not_confirmed", details=details)
    if at_now - _ts(f.at) > CONFIRM_STALE:
        return Opening()
    return Opening(
        status="awaiting_confirmation",
        confirm_by=at_now + within,
        event="confirmation_requested",
        details={"within_min": within.total_seconds() / 60, "until": (at_now + within).isoformat()},
    )


def _judge_waiting(
    row: tuple[Any, ...],
    g: Finding | None,
    members: Sequence[Finding],
    cohort: Cohort,
    data: Dataset | None,
    *,
    i: int,
    at_now: datetime,
) -> tuple[str, float | None] | None:
    """Judge an alert awaiting its repeat: (verdict, repeat time), or None to keep waiting.

    Verdicts: 'repeat' (the repeat fired too), 'not_confirmed' (it was normal), 'no repeat'
    (deadline passed), 'severity' (worse now: staff at once)."""
    t0, deadline = row[5].timestamp(), row[8]
    if g is not None and not events.confirmable(members, cohort.confirm_rules.get(i)):
        return "severity", None  # worse now (critical, or a trend beside it): staff at once
    rule_ids = [m.rule_id for m in members] or [row[9]]
    repeat = _first_reading_after(data, i, events.repeat_series(rule_ids), t0)
    if repeat is not None and _ts(repeat) <= deadline + CONFIRM_GRACE:
        return ("repeat" if g is not None and g.latest > t0 else "not_confirmed"), repeat
    if at_now >= deadline + CONFIRM_GRACE:
        return "no repeat", None
    return None


def _confirmed(conn: psycopg.Connection[Any], alert_id: int, at_now: datetime, by: str, repeat: float | None) -> None:
    conn.execute(
        "UPDATE alert SET status = 'open', shown_to_staff_at = %s, confirm_by = NULL, updated_at = %s WHERE id = %s",
        (at_now, at_now, alert_id),
    )
    details: dict[str, Any] = {"by": by}
    if repeat is not None:
        details["repeat_at"] = _ts(repeat).isoformat()
    _event(conn, alert_id, "confirmed", at_now, details=details)


def _not_confirmed(conn: psycopg.Connection[Any], alert_id: int, at_now: datetime, repeat: float | None) -> None:
    conn.execute(
        "UPDATE alert SET status = 'resolved', resolved_at = %s, resolution_reason = 'not_confirmed', "
        "confirm_by = NULL, updated_at = %s WHERE id = %s",
        (at_now, at_now, alert_id),
    )
    details = {"by": "repeat", "repeat_at": _ts(repeat).isoformat()} if repeat is not None else {}
    _event(conn, alert_id, "not_confirmed", at_now, details=details)


def _pseudo(cohort: Cohort, i: int) -> str:
    return cohort.pseudonyms[i] if cohort.pseudonyms else f"#{i}"


def housekeeping(conn: psycopg.Connection[Any], now: float, deadlines_min: dict[str, float]) -> LifecycleStats:
    """Time-driven transitions for every alert: snoozes that ended, unacknowledged high/critical escalation."""
    stats = LifecycleStats()
    at_now = _ts(now)
    with conn.transaction():
        # A spot value whose repeat never came reaches staff (for patients no evaluation saw).
        for alert_id, event_type in conn.execute(
            "UPDATE alert SET status = 'open', shown_to_staff_at = %s, confirm_by = NULL, updated_at = %s "
            "WHERE status = 'awaiting_confirmation' AND confirm_by <= %s RETURNING id, event_type",
            (at_now, at_now, at_now - CONFIRM_GRACE),
        ).fetchall():
            _event(conn, alert_id, "confirmed", at_now, details={"by": "no repeat"})
            if metrics.live():
                metrics.STAFF_ALERTS.labels(event_type).inc()
            stats.confirmed += 1
        for (alert_id,) in conn.execute(
            "UPDATE alert SET status = 'open', snoozed_until = NULL, updated_at = %s "
            "WHERE status = 'snoozed' AND snoozed_until <= %s RETURNING id",
            (at_now, at_now),
        ).fetchall():
            _event(conn, alert_id, "reopened", at_now, details={"reason": "snooze ended"})
            stats.reopened_after_snooze += 1
        for severity, minutes in deadlines_min.items():
            rows = conn.execute(
                """
                UPDATE alert SET escalated_at = %s, escalation_level = escalation_level + 1, updated_at = %s
                WHERE status = 'open' AND severity = %s AND acknowledged_at IS NULL AND escalated_at IS NULL
                  AND coalesce(shown_to_staff_at, opened_at) <= %s
                RETURNING id, escalation_level
                """,
                (at_now, at_now, severity, at_now - timedelta(minutes=minutes)),
            ).fetchall()
            for alert_id, level in rows:
                _event(
                    conn,
                    alert_id,
                    "escalated",
                    at_now,
                    details={"level": level, "by": "deadline", "deadline_min": minutes},
                )
                stats.escalated += 1
    return stats
