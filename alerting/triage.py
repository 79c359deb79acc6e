"""Missing-data triage: why a (patient, kind) gap has no data, and who must act on it.

The no-data rules (NODATA per scheduled kind, D10 CGM, HF9 weight) say *that* data is
missing; this module says *why*, from the gateway's retained status and the device table:

* ``patient_did_not_measure``: gateway online, the kind's device seen recently, nothing
  measured → a reminder to the patient, ``contact_care`` as it persists, staff only after
  the care plan's limit;
* ``device_problem``: no device of the kind paired, the device not seen, low battery or
  decode errors rising → a technical DEVICE_PROBLEM event (support view), a patient message
  when the patient can fix it (battery, device out of reach);
* ``gateway_outage``: no gateway assigned, the gateway offline (last will) or its status
  older than the heartbeat allows → a technical GATEWAY_OFFLINE event; no patient message
  (it could not be delivered).

Any cause reaches staff as a MISSING_DATA event once the gap passes the care plan's
``staff_after_h``. Classification and routing are plain functions over values
(``classify``, ``route``); ``gaps_for`` turns the rules' findings into per-kind gaps;
``load_gateway_states`` reads the gateway/device state of the patients in one query.
Rules are documented in alerting/README.md ("Missing-data triage").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np
import psycopg

from alerting.cohort import Cohort
from alerting.engine import SEVERITIES, Finding
from alerting.series import Dataset
from device_profiles.vocabulary import KINDS, EventType, Kind, MessageLevel

SEC_PER_HOUR = 3600.0
# The rules whose findings are gaps, and the kind each covers (NODATA: every scheduled kind).
GAP_RULES = ("NODATA", "D10", "HF9")
# Kinds measured without a device (answered on the gateway): a gap is the patient's.
DEVICELESS_KINDS = frozenset({Kind.SYMPTOMS.value})
# A scale may announce itself as body composition and still deliver the weight.
DEVICE_KINDS: Mapping[str, frozenset[str]] = {
    Kind.WEIGHT.value: frozenset({Kind.WEIGHT.value, Kind.BODY_COMPOSITION.value}),
}


class Cause(StrEnum):
    PATIENT_DID_NOT_MEASURE = "patient_did_not_measure"
    DEVICE_PROBLEM = "device_problem"
    GATEWAY_OUTAGE = "gateway_outage"


@dataclass(frozen=True)
class TriageSettings:
    """Cohort-wide constants of the classification (documented in alerting/README.md)."""

    low_battery_pct: float = 15.0  # below this (strictly) the battery is a device problem
    # The gateway heartbeat is 60 s (gateway.settings.heartbeat_s); a status older than ten
    # heartbeats means the gateway or its network is gone even without a last will.
    status_stale_after_s: float = 600.0
    device_seen_within_h: float = 24.0  # a device last seen longer ago counts as not seen


DEFAULT_SETTINGS = TriageSettings()


@dataclass(frozen=True)
class DeviceState:
    address: str
    kind: str | None
    last_seen_at: float  # epoch seconds, nan never
    battery_pct: float  # nan unknown
    decode_errors: int = 0
    decode_errors_before: int | None = None  # the count at the previous triage, None unknown


@dataclass(frozen=True)
class GatewayState:
    gateway_id: str
    online: bool
    last_status_at: float  # epoch seconds, nan never
    devices: tuple[DeviceState, ...] = ()


@dataclass(frozen=True)
class Gap:
    patient: int
    rule_id: str
    kind: str
    since: float  # the last reading of the kind (or the window start)
    gap_h: float
    severity: str
    # The patient's newest reading of any other kind (nan: none): a patient whose scale and
    # BP monitor still send has not gone silent, only skipped a form (see ``route``).
    other_last: float = math.nan


@dataclass(frozen=True)
class Classification:
    cause: Cause
    reasons: tuple[str, ...]
    device: DeviceState | None = None


@dataclass(frozen=True)
class Routing:
    """Who hears about one gap: the technical event, the patient message, staff."""

    technical: EventType | None
    message_level: MessageLevel | None
    message_sv: str | None
    staff: bool


@dataclass(frozen=True)
class Decision:
    gap: Gap
    classification: Classification
    routing: Routing
    staff_after_h: float
    contact_care_after_h: float


def _devices_of(gw: GatewayState, kind: str) -> list[DeviceState]:
    kinds = DEVICE_KINDS.get(kind, frozenset({kind}))
    return [d for d in gw.devices if d.kind in kinds]


def decode_errors_rising(d: DeviceState, seen: bool) -> bool:
    """More decode errors than at the previous triage; without one, any errors while it talks."""
    if d.decode_errors_before is not None:
        return d.decode_errors > d.decode_errors_before
    return seen and d.decode_errors > 0


def classify(kind: str, now: float, gw: GatewayState | None, s: TriageSettings = DEFAULT_SETTINGS) -> Classification:
    """The cause of a gap in ``kind`` (gateway first: without it nothing about devices is known)."""
    if gw is None:
        return Classification(Cause.GATEWAY_OUTAGE, ("no_gateway",))
    if not gw.online:
        return Classification(Cause.GATEWAY_OUTAGE, ("gateway_offline",))
    if math.isnan(gw.last_status_at) or now - gw.last_status_at > s.status_stale_after_s:
        return Classification(Cause.GATEWAY_OUTAGE, ("status_stale",))
    if kind in DEVICELESS_KINDS:
        return Classification(Cause.PATIENT_DID_NOT_MEASURE, ("not_measured",))
    devices = _devices_of(gw, kind)
    if not devices:
        return Classification(Cause.DEVICE_PROBLEM, ("no_device",))
    # The most recently seen device of the kind speaks for it (a spare one in a drawer does not).
    d = max(devices, key=lambda x: -math.inf if math.isnan(x.last_seen_at) else x.last_seen_at)
    seen = not math.isnan(d.last_seen_at) and now - d.last_seen_at <= s.device_seen_within_h * SEC_PER_HOUR
    reasons = []
    if not seen:
        reasons.append("device_not_seen")
    if not math.isnan(d.battery_pct) and d.battery_pct < s.low_battery_pct:
        reasons.append("low_battery")
    if decode_errors_rising(d, seen):
        reasons.append("decode_errors")
    if reasons:
        return Classification(Cause.DEVICE_PROBLEM, tuple(reasons), d)
    return Classification(Cause.PATIENT_DID_NOT_MEASURE, ("not_measured",), d)


def _display(kind: str) -> str:
    try:
        return KINDS[Kind(kind)].display.lower()
    except ValueError:
        return kind


def route(
    c: Classification,
    kind: str,
    gap_h: float,
    contact_care_after_h: float,
    staff_after_h: float,
    *,
    other_gap_h: float = math.inf,
) -> Routing:
    """Who must act on one gap of ``gap_h`` hours with cause ``c``.

    ``other_gap_h``: hours since the patient's newest reading of any other kind. A gap in a
    form the patient answers without a device (``DEVICELESS_KINDS``: the symptom form) while
    their devices keep sending (``other_gap_h`` under the staff limit) stays the patient's:
    reminders and "contact care", never the staff queue. The patient is measuring; they skipped
    the form. On the hard cohort these gaps were 1.61 of heart failure's 1.69 missing-data
    staff alerts per patient-month (the form is filled on ~70 % of days). A patient silent in
    every kind reaches staff at the limit as before.
    """
    staff = gap_h >= staff_after_h
    if kind in DEVICELESS_KINDS and c.cause is Cause.PATIENT_DID_NOT_MEASURE and other_gap_h < staff_after_h:
        staff = False
    what = _display(kind)
    if c.cause is Cause.PATIENT_DID_NOT_MEASURE:
        if gap_h >= contact_care_after_h:
            return Routing(
                None,
                MessageLevel.CONTACT_CARE,
                f"Vi har inte fått någon mätning ({what}) på länge. Mät så snart du kan eller kontakta din vårdenhet.",
                staff,
            )
        return Routing(None, MessageLevel.REMINDER, f"Påminnelse: dags att mäta ({what}).", staff)
    if c.cause is Cause.DEVICE_PROBLEM:
        # Only what the patient can fix is worth a message: a flat battery, a device out of reach.
        if "low_battery" in c.reasons:
            text = f"Batteriet i mätaren ({what}) är nästan slut. Byt batteri."
        elif "device_not_seen" in c.reasons:
            text = f"Basenheten hittar inte mätaren ({what}). Kontrollera att den är påslagen och nära basenheten."
        else:
            return Routing(EventType.DEVICE_PROBLEM, None, None, staff)
        return Routing(EventType.DEVICE_PROBLEM, MessageLevel.REMINDER, text, staff)
    return Routing(EventType.GATEWAY_OFFLINE, None, None, staff)


def _last_times(data: Dataset, kind: str, n: int) -> np.ndarray:
    last = np.full(n, np.nan)
    for key, s in data.items():
        if key.split(".", 1)[0] == kind:
            last = np.fmax(last, s.last_time(n))
    return last


def _limits(cohort: Cohort, rule_id: str, i: int) -> tuple[float, float]:
    """(contact_care_after_h, staff_after_h) of patient ``i`` for a gap found by ``rule_id``.

    Defaults: staff at the rule's low level (NODATA/D10 ``low_after_h``, HF9 ``low_days``),
    contact care half way between the info and the low level.
    """
    if rule_id == "HF9":
        info = float(cohort.param("HF9", "info_days", 2.0)[0][i]) * 24.0
        low = float(cohort.param("HF9", "low_days", 3.0)[0][i]) * 24.0
    else:
        info_default = 24.0 if rule_id == "D10" else 36.0
        info = float(cohort.param(rule_id, "info_after_h", info_default)[0][i])
        low = float(cohort.param(rule_id, "low_after_h", 72.0)[0][i])
    staff = float(cohort.param(rule_id, "staff_after_h", low)[0][i])
    contact = float(cohort.param(rule_id, "contact_care_after_h", (info + low) / 2.0)[0][i])
    return contact, staff


def gaps_for(
    findings: Sequence[Finding], data: Dataset, cohort: Cohort, now: float, window_days: int = 28
) -> list[Gap]:
    """Per (patient, kind) gaps behind the gap rules' findings.

    A NODATA finding names the patient only; every scheduled kind (not CGM) silent for
    longer than the patient's ``info_after_h`` is a gap of its own.
    """
    start = now - window_days * 24 * SEC_PER_HOUR
    cache: dict[str, np.ndarray] = {}

    def last(kind: str) -> float:
        if kind not in cache:
            cache[kind] = _last_times(data, kind, cohort.n)
        t = float(cache[kind][i])
        t = start if math.isnan(t) else t
        # Not before monitoring began (the gap rules count the same way).
        began = float(cohort.monitored_since[i]) if cohort.monitored_since is not None else math.nan
        return t if math.isnan(began) else max(t, began)

    per_key: dict[str, np.ndarray] = {}

    def other_last(i: int, kind: str) -> float:
        newest = math.nan
        for key, s in data.items():
            if key.split(".", 1)[0] != kind:
                if key not in per_key:
                    per_key[key] = s.last_time(cohort.n)
                newest = float(np.fmax(newest, per_key[key][i]))
        return newest

    gaps: list[Gap] = []
    for f in findings:
        i = f.patient
        if f.rule_id == "D10":
            kinds = [Kind.GLUCOSE_CGM.value]
        elif f.rule_id == "HF9":
            kinds = [Kind.WEIGHT.value]
        elif f.rule_id == "NODATA":
            info_h = float(cohort.param("NODATA", "info_after_h", 36.0)[0][i])
            kinds = [
                k
                for k, per_day in cohort.schedule.items()
                if k != Kind.GLUCOSE_CGM.value and per_day[i] > 0 and (now - last(k)) / SEC_PER_HOUR > info_h
            ]
        else:
            continue
        for k in kinds:
            since = last(k)
            others = other_last(i, k) if k in DEVICELESS_KINDS else math.nan
            gaps.append(Gap(i, f.rule_id, k, since, (now - since) / SEC_PER_HOUR, f.severity, others))
    return gaps


def decide(
    gaps: Sequence[Gap],
    cohort: Cohort,
    states: Mapping[int, GatewayState],
    now: float,
    s: TriageSettings = DEFAULT_SETTINGS,
) -> list[Decision]:
    out = []
    for g in gaps:
        c = classify(g.kind, now, states.get(g.patient), s)
        contact, staff = _limits(cohort, g.rule_id, g.patient)
        other_h = math.inf if math.isnan(g.other_last) else (now - g.other_last) / SEC_PER_HOUR
        out.append(Decision(g, c, route(c, g.kind, g.gap_h, contact, staff, other_gap_h=other_h), staff, contact))
    return out


def max_severity(severities: Sequence[str]) -> str:
    return max(severities, key=SEVERITIES.index)


def _epoch(t: datetime | None) -> float:
    return math.nan if t is None else t.timestamp()


def _iso_epoch(v: Any) -> float:
    return datetime.fromisoformat(v).timestamp() if isinstance(v, str) else math.nan


def load_gateway_states(
    conn: psycopg.Connection[Any], cohort: Cohort, now: float, patients: Sequence[int] | None = None
) -> dict[int, GatewayState]:
    """The gateway assigned to each patient now, its status and its devices (one query).

    Devices come from the retained status (what the gateway hears now: last seen, battery,
    decode errors) merged over the ``device`` table (everything ever paired to it). The
    decode-error count of the previous triage comes from the open triage event's evidence.
    """
    idx = list(range(cohort.n)) if patients is None else list(patients)
    if not idx:
        return {}
    pids = [cohort.patient_ids[i] for i in idx]
    rows = conn.execute(
        """
        SELECT ga.patient_id::text, g.id, g.online, g.last_status_at, g.last_status,
               coalesce((SELECT json_agg(json_build_object('address', d.address, 'kind', d.kind,
                                 'last_seen_at', d.last_seen_at, 'battery_pct', d.battery_pct))
                         FROM device d WHERE d.gateway_id = g.id), '[]'::json),
               (SELECT a.evidence -> 'decode_errors' FROM alert a
                 WHERE a.patient_id = ga.patient_id AND a.status <> 'resolved'
                   AND a.event_type = ANY(%(types)s) AND a.evidence ? 'decode_errors'
                 ORDER BY a.updated_at DESC LIMIT 1)
        FROM gateway_assignment ga JOIN gateway g ON g.id = ga.gateway_id
        WHERE ga.patient_id = ANY(%(pids)s::uuid[]) AND ga.valid @> to_timestamp(%(now)s)
        """,
        {"pids": pids, "now": now, "types": [e.value for e in TRIAGE_EVENT_TYPES]},
    ).fetchall()
    index = {pid: i for i, pid in zip(idx, pids, strict=True)}
    out: dict[int, GatewayState] = {}
    for pid, gid, online, status_at, status, table_devices, previous in rows:
        before = previous or {}
        merged: dict[str, dict[str, Any]] = {}
        for d in table_devices:
            merged[d["address"]] = {
                "kind": d["kind"],
                "last_seen_at": _iso_epoch(d["last_seen_at"]),
                "battery_pct": math.nan if d["battery_pct"] is None else float(d["battery_pct"]),
                "decode_errors": 0,
            }
        for d in (status or {}).get("devices", []):
            m = merged.setdefault(
                d["address"], {"kind": None, "last_seen_at": math.nan, "battery_pct": math.nan, "decode_errors": 0}
            )
            m["kind"] = d.get("kind") or m["kind"]
            m["last_seen_at"] = float(np.fmax(m["last_seen_at"], _iso_epoch(d.get("last_seen_at"))))
            if d.get("battery_pct") is not None:
                m["battery_pct"] = float(d["battery_pct"])
            m["decode_errors"] = int(d.get("decode_errors") or 0)
        devices = tuple(
            DeviceState(
                addr,
                m["kind"],
                m["last_seen_at"],
                m["battery_pct"],
                m["decode_errors"],
                int(before[addr]) if addr in before else None,
            )
            for addr, m in sorted(merged.items())
        )
        out[index[pid]] = GatewayState(gid, bool(online), _epoch(status_at), devices)
    return out


TRIAGE_EVENT_TYPES = (EventType.MISSING_DATA, EventType.DEVICE_PROBLEM, EventType.GATEWAY_OFFLINE)
