"""Missing-data triage in the database: the three triage events and the patient messages.

Per patient at most one non-resolved alert per event type (the schema's unique index):

* MISSING_DATA: route ``patient`` while only the patient is asked to measure, ``staff``
  (and ``shown_to_staff_at``) once any gap passes the care plan's ``staff_after_h``;
* DEVICE_PROBLEM / GATEWAY_OFFLINE: route ``technical``, never shown to staff (the
  gateway/devices support view lists them).

A patient message is queued once per (event, kind, level): a reminder, then contact care as
the gap persists. When the gap closes, events never shown to staff are resolved by the
platform (``condition_cleared``), events in the staff queue get a resolution suggestion,
and unsent messages expire so no reminder goes out after the measurement arrived.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from alerting import metrics
from alerting.cohort import Cohort
from alerting.engine import Finding, iso
from alerting.lifecycle import MESSAGE_TTL
from alerting.series import Dataset
from alerting.triage import (
    DEFAULT_SETTINGS,
    GAP_RULES,
    TRIAGE_EVENT_TYPES,
    Cause,
    Decision,
    GatewayState,
    TriageSettings,
    decide,
    gaps_for,
    load_gateway_states,
    max_severity,
)
from device_profiles.vocabulary import EventType, ResolutionReason, Route


@dataclass
class TriageStats:
    opened: int = 0
    updated: int = 0
    closed: int = 0
    messages: int = 0


def _evidence(ds: Sequence[Decision], states: dict[int, GatewayState]) -> dict[str, Any]:
    gw = states.get(ds[0].gap.patient)
    return {
        "triage": [
            {
                "rule": d.gap.rule_id,
                "kind": d.gap.kind,
                "since": iso(d.gap.since),
                "gap_h": round(d.gap.gap_h, 2),
                "severity": d.gap.severity,
                "cause": d.classification.cause.value,
                "reasons": list(d.classification.reasons),
                "device": None if d.classification.device is None else d.classification.device.address,
                "staff": d.routing.staff,
                "staff_after_h": d.staff_after_h,
                "contact_care_after_h": d.contact_care_after_h,
            }
            for d in ds
        ],
        "gateway": None
        if gw is None
        else {
            "id": gw.gateway_id,
            "online": gw.online,
            "last_status_at": None if math.isnan(gw.last_status_at) else iso(gw.last_status_at),
        },
        # Kept so that the next triage can tell whether decode errors are rising.
        "decode_errors": {} if gw is None else {d.address: d.decode_errors for d in gw.devices},
    }


def _wanted(ds: Sequence[Decision]) -> dict[EventType, tuple[list[Decision], Route]]:
    """The triage events a patient's decisions call for, with the decisions each carries."""
    out: dict[EventType, tuple[list[Decision], Route]] = {}
    staff = [d for d in ds if d.routing.staff]
    patient = [d for d in ds if d.classification.cause is Cause.PATIENT_DID_NOT_MEASURE]
    if staff:
        out[EventType.MISSING_DATA] = (staff + [d for d in patient if d not in staff], Route.STAFF)
    elif patient:
        out[EventType.MISSING_DATA] = (patient, Route.PATIENT)
    for et in (EventType.DEVICE_PROBLEM, EventType.GATEWAY_OFFLINE):
        tech = [d for d in ds if d.routing.technical is et]
        if tech:
            out[et] = (tech, Route.TECHNICAL)
    return out


def apply_triage(
    conn: psycopg.Connection[Any],
    cohort: Cohort,
    decisions: Sequence[Decision],
    states: dict[int, GatewayState],
    now: float,
    *,
    findings: Sequence[Finding] = (),
) -> TriageStats:
    """Bring the cohort's triage events and messages in line with fresh decisions (one transaction).

    ``findings``: the gap rules' findings behind the decisions, kept in ``alert_finding``.
    """
    stats = TriageStats()
    at_now = datetime.fromtimestamp(now, UTC)
    by_patient: dict[int, list[Decision]] = {}
    for d in decisions:
        by_patient.setdefault(d.gap.patient, []).append(d)
    types = [e.value for e in TRIAGE_EVENT_TYPES]
    with conn.transaction():
        rows = conn.execute(
            "SELECT id, patient_id::text, event_type, route, shown_to_staff_at FROM alert "
            "WHERE status <> 'resolved' AND patient_id = ANY(%s::uuid[]) AND event_type = ANY(%s) FOR UPDATE",
            (cohort.patient_ids, types),
        ).fetchall()
        current = {(r[1], r[2]): r for r in rows}
        keep: set[int] = set()
        alert_ids: dict[tuple[int, EventType], int] = {}
        for i, ds in by_patient.items():
            pid = cohort.patient_ids[i]
            gw = states.get(i)
            for et, (carried, rt) in _wanted(ds).items():
                lead = max(carried, key=lambda d: (d.gap.gap_h, d.gap.rule_id))
                sev = max_severity([d.gap.severity for d in carried])
                evidence = json.dumps(_evidence(carried, states))
                shown = at_now if rt is Route.STAFF else None
                row = current.get((pid, et.value))
                if row is None:
                    found = conn.execute(
                        """
                        INSERT INTO alert (patient_id, rule_id, event_type, status, severity, title, opened_at,
                                           updated_at, route, shown_to_staff_at, last_fired_at, fire_count,
                                           latest_value, evidence)
                        VALUES (%s, %s, %s, 'open', %s, %s, %s, %s, %s, %s, %s, 1, %s, %s)
                        ON CONFLICT (patient_id, event_type) WHERE status <> 'resolved' DO NOTHING
                        RETURNING id
                        """,
                        (
                            pid,
                            lead.gap.rule_id,
                            et.value,
                            sev,
                            et.label_sv,
                            at_now,
                            at_now,
                            rt.value,
                            shown,
                            at_now,
                            lead.gap.gap_h,
                            evidence,
                        ),
                    ).fetchone()
                    if found is None:
                        continue  # a concurrent evaluator opened it
                    alert_id = int(found[0])
                    _event(conn, alert_id, "opened", at_now, {"route": rt.value, "severity": sev})
                    stats.opened += 1
                else:
                    alert_id = int(row[0])
                    conn.execute(
                        """
                        UPDATE alert SET rule_id = %s, severity = %s, route = %s, latest_value = %s, evidence = %s,
                               updated_at = %s, last_fired_at = %s, resolution_suggested_at = NULL,
                               shown_to_staff_at = coalesce(shown_to_staff_at, %s)
                        WHERE id = %s
                        """,
                        (lead.gap.rule_id, sev, rt.value, lead.gap.gap_h, evidence, at_now, at_now, shown, alert_id),
                    )
                    if row[3] != rt.value:
                        _event(conn, alert_id, "routed", at_now, {"from": row[3], "to": rt.value})
                    stats.updated += 1
                keep.add(alert_id)
                alert_ids[(i, et)] = alert_id
                for d in carried:
                    if d.routing.message_level is None or et is EventType.GATEWAY_OFFLINE:
                        continue
                    if et is EventType.MISSING_DATA and d.classification.cause is not Cause.PATIENT_DID_NOT_MEASURE:
                        continue  # device messages travel with the DEVICE_PROBLEM event
                    queued = _message(conn, pid, gw=gw, alert_id=alert_id, d=d, at_now=at_now)
                    stats.messages += queued
                    if queued:
                        metrics.TRIAGE_MESSAGES.labels(d.routing.message_level.value).inc()
        for (_, _), row in current.items():
            alert_id = int(row[0])
            if alert_id in keep:
                continue
            _close(conn, alert_id, shown_to_staff=row[4] is not None, at_now=at_now)
            stats.closed += 1
        _store_findings(conn, cohort, findings=findings, decisions=decisions, alert_ids=alert_ids, at_now=at_now)
    return stats


def _message(
    conn: psycopg.Connection[Any],
    pid: str,
    *,
    gw: GatewayState | None,
    alert_id: int,
    d: Decision,
    at_now: datetime,
) -> int:
    """Queue the decision's message unless this event already queued that level for the kind."""
    assert d.routing.message_level is not None
    assert d.routing.message_sv is not None
    cur = conn.execute(
        """
        INSERT INTO patient_message (patient_id, gateway_id, alert_id, level, kind, message_sv, created_at, expires_at)
        SELECT %s, %s, %s, %s, %s, %s, %s, %s
        WHERE NOT EXISTS (SELECT 1 FROM patient_message WHERE alert_id = %s AND kind = %s AND level = %s)
        """,
        (
            pid,
            None if gw is None else gw.gateway_id,
            alert_id,
            d.routing.message_level.value,
            d.gap.kind,
            d.routing.message_sv,
            at_now,
            at_now + MESSAGE_TTL,
            alert_id,
            d.gap.kind,
            d.routing.message_level.value,
        ),
    )
    return cur.rowcount


def _close(conn: psycopg.Connection[Any], alert_id: int, *, shown_to_staff: bool, at_now: datetime) -> None:
    # The gap closed: no reminder may go out any more.
    conn.execute(
        "UPDATE patient_message SET expires_at = %s WHERE alert_id = %s AND sent_at IS NULL AND expires_at > %s",
        (at_now, alert_id, at_now),
    )
    if shown_to_staff:
        # Staff have seen it: they decide (as the lifecycle does for every staff alert).
        conn.execute(
            "UPDATE alert SET resolution_suggested_at = coalesce(resolution_suggested_at, %s), updated_at = %s "
            "WHERE id = %s",
            (at_now, at_now, alert_id),
        )
        _event(conn, alert_id, "resolution_suggested", at_now, {"by": "triage", "reason": "data_arrived"})
        return
    conn.execute(
        "UPDATE alert SET status = 'resolved', resolved_at = %s, updated_at = %s, resolution_reason = %s WHERE id = %s",
        (at_now, at_now, ResolutionReason.CONDITION_CLEARED.value, alert_id),
    )
    _event(conn, alert_id, "resolved", at_now, {"by": "triage", "reason": "data_arrived"})


def _event(conn: psycopg.Connection[Any], alert_id: int, event: str, at: datetime, details: dict[str, Any]) -> None:
    conn.execute(
        "INSERT INTO alert_event (alert_id, event, at, details) VALUES (%s, %s, %s, %s)",
        (alert_id, event, at, json.dumps(details)),
    )


def _finding_route(ds: Sequence[Decision]) -> tuple[Route, EventType | None]:
    """The route of one gap rule's finding (from its kinds' decisions) and the event it feeds."""
    if any(d.routing.staff for d in ds):
        return Route.STAFF, EventType.MISSING_DATA
    tech = next((d.routing.technical for d in ds if d.routing.technical is not None), None)
    if tech is not None:
        return Route.TECHNICAL, tech
    if ds:
        return Route.PATIENT, EventType.MISSING_DATA
    return Route.RECORD, None


def _store_findings(
    conn: psycopg.Connection[Any],
    cohort: Cohort,
    *,
    findings: Sequence[Finding],
    decisions: Sequence[Decision],
    alert_ids: dict[tuple[int, EventType], int],
    at_now: datetime,
) -> None:
    """Keep the gap rules' findings in ``alert_finding`` (as the lifecycle does for the others).

    One current row per (patient, rule) with the triage's route and the event it fed;
    ``cleared_at`` as soon as the rule stops finding a gap (gap rules have no hysteresis).
    """
    by_rule: dict[tuple[int, str], list[Decision]] = {}
    for d in decisions:
        by_rule.setdefault((d.gap.patient, d.gap.rule_id), []).append(d)
    still: set[tuple[str, str]] = set()
    for f in findings:
        pid = cohort.patient_ids[f.patient]
        still.add((pid, f.rule_id))
        rt, et = _finding_route(by_rule.get((f.patient, f.rule_id), []))
        alert_id = None if et is None else alert_ids.get((f.patient, et))
        at = datetime.fromtimestamp(f.at, UTC)
        value = f.value if math.isfinite(f.value) else None
        updated = conn.execute(
            "UPDATE alert_finding SET last_at = greatest(last_at, %s), severity = %s, route = %s, alert_id = %s,"
            " latest_value = %s, evidence = %s, fire_count = fire_count + (CASE WHEN last_at < %s THEN 1 ELSE 0 END)"
            " WHERE patient_id = %s AND rule_id = %s AND cleared_at IS NULL",
            (at, f.severity, rt.value, alert_id, value, json.dumps(f.evidence), at, pid, f.rule_id),
        )
        if updated.rowcount == 0:
            conn.execute(
                "INSERT INTO alert_finding (alert_id, patient_id, rule_id, route, severity, first_at, last_at,"
                " latest_value, evidence) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (alert_id, pid, f.rule_id, rt.value, f.severity, at, at, value, json.dumps(f.evidence)),
            )
    for pid, rule_id in conn.execute(
        "SELECT patient_id::text, rule_id FROM alert_finding WHERE cleared_at IS NULL "
        "AND patient_id = ANY(%s::uuid[]) AND rule_id = ANY(%s)",
        (cohort.patient_ids, list(GAP_RULES)),
    ).fetchall():
        if (pid, rule_id) not in still:
            conn.execute(
                "UPDATE alert_finding SET cleared_at = %s"
                " WHERE patient_id = %s AND rule_id = %s AND cleared_at IS NULL",
                (at_now, pid, rule_id),
            )


# The rules the alert lifecycle must leave to triage.
TRIAGED_RULES = frozenset(GAP_RULES)


def triage_findings(
    conn: psycopg.Connection[Any],
    cohort: Cohort,
    data: Dataset,
    findings: Sequence[Finding],
    now: float,
    *,
    settings: TriageSettings = DEFAULT_SETTINGS,
) -> TriageStats:
    """The lifecycle's missing-data hook: the gap rules' findings go through triage.

    The caller passes every finding and gives ``lifecycle.apply_findings`` only the others,
    with ``rules`` excluding ``TRIAGED_RULES``, so the lifecycle neither routes gaps by
    severity nor touches the triage events (D9/H6 stay with the lifecycle: route ``record``).
    """
    gap_findings = [f for f in findings if f.rule_id in GAP_RULES]
    gaps = gaps_for(gap_findings, data, cohort, now)
    states = load_gateway_states(conn, cohort, now, sorted({g.patient for g in gaps}))
    decisions = decide(gaps, cohort, states, now, settings)
    stats = apply_triage(conn, cohort, decisions, states, now, findings=gap_findings)
    for d in decisions:
        metrics.TRIAGE_GAPS.labels(d.classification.cause.value).inc()
    return stats
