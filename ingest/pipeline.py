"""From received MQTT messages to rows and dead letters: pure functions, no I/O.

The message path, each step a plain function on plain data that tests drive directly:

1. **parse and validate** (:func:`prepare`): a readings message is decoded once by
   :func:`device_profiles.wire.decode_readings` (one pydantic pass for a well-formed
   message; two steps for a bad one, so one bad reading never costs its neighbours), then
   each typed reading is dated (:func:`dating`) and judged (:func:`judge`). A status
   message becomes a :class:`StatusUpdate`;
2. **route to the patient** (:func:`route`): with the gateways' assignments, which the
   database shell reads inside the storing transaction (:class:`GatewayRoutes`), each
   reading gets the patient its gateway was assigned to at ``measured_at``; a reading
   twice in one batch is kept once;
3. **the weight verdicts** (:func:`weight_candidates`, :func:`apply_weight_verdicts`):
   what the weight-history query (:data:`ingest.store.WEIGHT_CHECK`) answered, applied;
4. **device rows** (:func:`device_rows`) for the ``device`` table.

Whatever cannot become an observation becomes a :class:`DeadLetter` carrying its reason
and bytes; nothing is dropped.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from device_profiles.errors import WireFormatError
from device_profiles.messages import OFFLINE_PAYLOAD, GatewayStatus
from device_profiles.wire import (
    MAX_MESSAGE_BYTES,
    NUL_DETAIL,
    TOPIC_ROOT,
    Reading,
    Refusal,
    decode_readings,
    gateway_id_from_topic,
    has_nul,
    may_hold_nul,
    plausibility_problems,
    spo2_outside_validated_range,
)

# A message larger than the wire limit (also the broker's message_size_limit) is a
# 'too_large' dead letter that keeps only its first DEAD_LETTER_KEEP_BYTES, with its size
# and sha256: enough to see what it was, without megabytes per row.
DEAD_LETTER_KEEP_BYTES = 64 * 1024
# measured_at (and the gateway's received_at) of a stored reading lie in this window: not
# before MEASURED_AT_FLOOR (the gateway already replaces unset device clocks with its
# reception time), not more than MEASURED_AT_MAX_AHEAD after ingest received the message.
# Outside it a timestamp is garbage, and one stored in year 10000 broke every reader.
MEASURED_AT_FLOOR = datetime(2000, 1, 1, tzinfo=UTC)
MEASURED_AT_MAX_AHEAD = timedelta(minutes=10)
SPO2_FLAG_REASON = "spo2 below the validated range of oximeters (70 %)"
# Reasons start with a stable code the staff pages translate (clinic_api/labels.py).
OTHER_USER_REASON = "other_user: measured by user {user} of a shared device, not the patient"
PROBABLY_SOMEONE_ELSE = "probably_someone_else"


@dataclass(frozen=True, slots=True)
class Incoming:
    """One MQTT message as the network thread handed it over."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    # Connection generation it arrived on: acks for older connections are not sent.
    generation: int
    received_at: datetime


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    gateway_id: str | None
    reading_index: int | None
    reason: str
    detail: str | None
    payload: bytes
    received_at: datetime
    # Of the whole message, for message-level dead letters (payload may be cut short).
    payload_bytes: int | None = None
    payload_sha256: bytes | None = None


# Not frozen: one is made per reading, and a frozen dataclass's __init__ (object.__setattr__
# per field) cost several times a plain one's. Nothing changes one after it is made
# (the weight check makes a new one with dataclasses.replace).
@dataclass(slots=True)
class PreparedReading:
    gateway_id: str
    topic: str
    reading_index: int
    reading: Reading
    status: str
    reject_reason: str | None
    # The reading's own JSON, kept for a dead letter if its gateway has no patient
    # (None when the whole message parsed in one pass: the model is dumped instead).
    doc: Any
    # When ingest received the message.
    received_at: datetime
    # The reading's measured_at and (the gateway's) received_at in datetime.UTC, made
    # once: pydantic's own UTC tzinfo makes every comparison and subtraction call its
    # utcoffset() (~1 us each), and downstream compares and encodes these many times.
    measured_at: datetime
    gateway_received_at: datetime


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    gateway_id: str
    online: bool
    status: GatewayStatus | None


@dataclass(slots=True)
class PreparedBatch:
    readings: list[PreparedReading] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    # Envelope sent_at of each readings message, for the lag metric.
    sent_at: list[datetime] = field(default_factory=list)


def clean_text(text: str | None) -> str | None:
    """Text that PostgreSQL can hold (no NUL) and a reader can use (at most 2,000 characters)."""
    # Details and device-given units echo hostile input.
    return None if text is None else text.replace("\x00", "\\0")[:2000]


def _dead(msg: Incoming, gateway_id: str | None, reason: str, detail: str | None) -> DeadLetter:
    payload = msg.payload
    size, digest = len(payload), hashlib.sha256(payload).digest()
    if size > MAX_MESSAGE_BYTES:
        payload = payload[:DEAD_LETTER_KEEP_BYTES]
    return DeadLetter(msg.topic, gateway_id, None, reason, clean_text(detail), payload, msg.received_at, size, digest)


ReadingTimes = tuple[datetime, datetime]


def dating(received_at: datetime) -> Callable[[Reading], Refusal | ReadingTimes]:
    """The dating of the readings of a message received at ``received_at``.

    A reading's ``measured_at`` and ``received_at`` lie within [MEASURED_AT_FLOOR,
    received_at + MEASURED_AT_MAX_AHEAD]: then both in UTC, else why not.
    """
    floor, latest = MEASURED_AT_FLOOR, received_at + MEASURED_AT_MAX_AHEAD

    def refusal(name: str, t: datetime) -> Refusal:
        return Refusal(
            f"{name}_out_of_range",
            f"{name} {t.isoformat()} outside {floor.date().isoformat()}"
            f" .. {latest.isoformat(timespec='seconds')} (ingest's clock + {MEASURED_AT_MAX_AHEAD})",
        )

    def accept(reading: Reading) -> Refusal | ReadingTimes:
        # Written out, not looped: this runs for every reading.
        measured, received = reading.measured_at, reading.received_at
        try:
            measured_utc = measured.astimezone(UTC)
        except OverflowError:  # beyond year 9999 (or before year 1) in UTC
            return refusal("measured_at", measured)
        if not floor <= measured_utc <= latest:
            return refusal("measured_at", measured)
        try:
            received_utc = received.astimezone(UTC)
        except OverflowError:
            return refusal("received_at", received)
        if not floor <= received_utc <= latest:
            return refusal("received_at", received)
        return measured_utc, received_utc

    return accept


def reading_dead_letter(r: PreparedReading, reason: str, detail: str | None) -> DeadLetter:
    if r.doc is None:
        payload = r.reading.model_dump_json(exclude_none=True).encode()
    else:
        payload = json.dumps(r.doc, separators=(",", ":"), default=str).encode()
    return DeadLetter(r.topic, r.gateway_id, r.reading_index, reason, clean_text(detail), payload, r.received_at)


def judge(reading: Reading) -> tuple[str, str | None]:
    """Status and reason of a reading by itself (the weight-history check needs the DB).

    A reading the gateway flagged ``other_user`` (another User ID on a shared cuff or
    scale) is stored as ``rejected``: kept and shown to staff, never used by the rules.
    """
    if "other_user" in reading.flags:
        user = "?" if reading.user_index is None else str(reading.user_index)
        return "rejected", OTHER_USER_REASON.format(user=user)
    problems = plausibility_problems(reading.kind, reading.values)
    if problems:
        return "rejected", clean_text("; ".join(problems))
    if spo2_outside_validated_range(reading.values):
        return "flagged", SPO2_FLAG_REASON
    return "valid", None


def raw_bytes(reading: Reading) -> bytes | None:
    if reading.raw is None:
        return None
    try:
        return base64.b64decode(reading.raw, validate=True)
    except (binascii.Error, ValueError):
        # Keep what the gateway sent rather than lose it.
        return reading.raw.encode()


def prepare_into(batch: PreparedBatch, msg: Incoming) -> None:
    """Parse one message into ``batch``. Never raises on input."""
    parts = msg.topic.split("/")
    if len(msg.payload) > MAX_MESSAGE_BYTES:
        gw = parts[3] if len(parts) == 5 else None
        detail = f"{len(msg.payload)} bytes, limit {MAX_MESSAGE_BYTES}; first {DEAD_LETTER_KEEP_BYTES} kept"
        batch.dead_letters.append(_dead(msg, gw, "too_large", detail))
        return
    if len(parts) == 5 and parts[4] == "status" and msg.topic.startswith(TOPIC_ROOT + "/"):
        _prepare_status(batch, msg, parts[3])
        return
    try:
        decoded = decode_readings(msg.topic, msg.payload, dating(msg.received_at))
    except WireFormatError as err:
        gw = parts[3] if len(parts) == 5 else None
        batch.dead_letters.append(_dead(msg, gw, err.reason, err.detail))
        return
    except Exception as err:
        batch.dead_letters.append(_dead(msg, None, "unparseable", f"{type(err).__name__}: {err}"))
        return
    gateway_id, topic, received_at = decoded.gateway_id, msg.topic, msg.received_at
    batch.sent_at.append(decoded.sent_at)
    for bad in decoded.refused:
        payload = json.dumps(bad.doc, separators=(",", ":"), default=str).encode()
        batch.dead_letters.append(
            DeadLetter(topic, gateway_id, bad.index, bad.reason, clean_text(bad.detail), payload, received_at)
        )
    append = batch.readings.append
    for index, reading, doc, (measured, gateway_received) in decoded.readings:
        status, reason = judge(reading)
        append(
            PreparedReading(
                gateway_id, topic, index, reading, status, reason, doc, received_at, measured, gateway_received
            )
        )


def _prepare_status(batch: PreparedBatch, msg: Incoming, gateway_id: str) -> None:
    try:
        gateway_id_from_topic(msg.topic.rsplit("/", 1)[0] + "/readings")
    except WireFormatError as err:
        batch.dead_letters.append(_dead(msg, None, err.reason, err.detail))
        return
    if msg.payload == b"":
        return  # a cleared retained status: nothing to record
    if msg.payload == OFFLINE_PAYLOAD:
        batch.statuses.append(StatusUpdate(gateway_id, online=False, status=None))
        return
    try:
        status = GatewayStatus.model_validate_json(msg.payload)
    except ValidationError as err:
        batch.dead_letters.append(_dead(msg, gateway_id, "bad_status", str(err.errors(include_url=False)[:3])))
        return
    if may_hold_nul(msg.payload) and has_nul(json.loads(msg.payload)):
        batch.dead_letters.append(_dead(msg, gateway_id, "nul_in_text", NUL_DETAIL))
        return
    if status.gateway_id != gateway_id:
        detail = f"payload says {status.gateway_id!r}, topic says {gateway_id!r}"
        batch.dead_letters.append(_dead(msg, gateway_id, "gateway_id_mismatch", detail))
        return
    batch.statuses.append(StatusUpdate(gateway_id, online=True, status=status))


def prepare(messages: Sequence[Incoming]) -> PreparedBatch:
    batch = PreparedBatch()
    for msg in messages:
        prepare_into(batch, msg)
    return batch


# -- routing to the patient ----------------------------------------------------------------

# An assignment as plain values: (patient, lower, upper, lower inclusive, upper inclusive);
# comparing these inline is several times cheaper than psycopg's Range.__contains__.
Assignment = tuple[uuid.UUID, datetime | None, datetime | None, bool, bool]
Resolved = tuple[PreparedReading, uuid.UUID]


@dataclass(slots=True)
class GatewayRoutes:
    """The registered gateways among a batch's, and their patient assignments."""

    known: set[str] = field(default_factory=set)
    assignments: dict[str, list[Assignment]] = field(default_factory=dict)

    def add(self, gateway_id: str, assignment: Assignment | None) -> None:
        """A registered gateway, with one of its assignments (bounds best in datetime.UTC)."""
        self.known.add(gateway_id)
        if assignment is not None:
            self.assignments.setdefault(gateway_id, []).append(assignment)


def assigned_patient(assignments: Iterable[Assignment], t: datetime) -> uuid.UUID | None:
    for patient, lower, upper, lower_inc, upper_inc in assignments:
        if lower is not None and (t < lower or (t == lower and not lower_inc)):
            continue
        if upper is not None and (t > upper or (t == upper and not upper_inc)):
            continue
        return patient
    return None


@dataclass(slots=True)
class Routed:
    """A batch's readings with their patients, once per reading id, and what could not be routed."""

    resolved: list[Resolved] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    # Copies of a reading already in this batch (the first is kept).
    duplicates: int = 0


def route(readings: Iterable[PreparedReading], routes: GatewayRoutes) -> Routed:
    """Each reading with its gateway's patient at ``measured_at``.

    ``unknown_gateway`` / ``unassigned_gateway`` dead letters for those without; of a
    reading twice in the batch, the first routed copy is kept and the others counted.
    """
    out = Routed()
    seen: set[uuid.UUID] = set()
    known, assignments = routes.known, routes.assignments
    for r in readings:
        gw = r.gateway_id
        if gw not in known:
            out.dead_letters.append(reading_dead_letter(r, "unknown_gateway", f"gateway {gw} is not registered"))
            continue
        patient_id = assigned_patient(assignments.get(gw, ()), r.measured_at)
        if patient_id is None:
            detail = f"gateway {gw} has no patient at {r.reading.measured_at.isoformat()}"
            out.dead_letters.append(reading_dead_letter(r, "unassigned_gateway", detail))
            continue
        rid = r.reading.reading_id
        if rid in seen:
            out.duplicates += 1
            continue
        seen.add(rid)
        out.resolved.append((r, patient_id))
    return out


# -- the weight verdicts ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WeightCandidate:
    """A weight the history check looks at: its place in the batch, reading, patient and kg."""

    position: int
    reading: PreparedReading
    patient_id: uuid.UUID
    kg: float


def weight_candidates(resolved: Sequence[Resolved]) -> list[WeightCandidate]:
    """The weights not already rejected, which the history check must look at."""
    out = []
    for i, (r, patient) in enumerate(resolved):
        w = r.reading.values.get("weight")
        if w is not None and w.value is not None and r.status != "rejected":
            out.append(WeightCandidate(i, r, patient, w.value))
    return out


# What the check said of one weight: (change from the previous day's, from the median, the median).
WeightVerdict = tuple[float | None, float | None, float | None]


def apply_weight_verdicts(
    resolved: list[Resolved],
    candidates: Sequence[WeightCandidate],
    verdicts: dict[uuid.UUID, WeightVerdict],
    *,
    max_change_kg: float,
    median_days: int,
) -> list[Resolved]:
    """``resolved`` with each weight the check found far from the patient's rejected and flagged."""
    if not verdicts:
        return resolved
    out = list(resolved)
    for c in candidates:
        r = c.reading
        v = verdicts.get(r.reading.reading_id)
        if v is None:
            continue
        change, from_median, median = v
        if change is not None and abs(change) > max_change_kg:
            why = f"weight changed {change:+.1f} kg from the previous day"
        else:
            why = f"weight {from_median:+.1f} kg from the median {median:.1f} kg of the last {median_days} days"
        flags = sorted({*r.reading.flags, PROBABLY_SOMEONE_ELSE})
        reading = r.reading.model_copy(update={"flags": flags})
        reason = f"{PROBABLY_SOMEONE_ELSE}: {why} (likely another person)"
        out[c.position] = (replace(r, reading=reading, status="rejected", reject_reason=reason), c.patient_id)
    return out


# -- device rows -------------------------------------------------------------------------------

DeviceKey = tuple[str, str]
DeviceRow = tuple[str, str, str, str | None, str | None, str | None, int | None, datetime, datetime]


def device_rows(resolved: Iterable[Resolved]) -> dict[DeviceKey, DeviceRow]:
    """Per device: its latest reading's details, first and last time seen in the batch."""
    seen: dict[DeviceKey, list[Any]] = {}  # [latest reading, first seen, last seen]
    for r, _ in resolved:
        at = r.gateway_received_at
        key = (r.gateway_id, r.reading.device.address)
        entry = seen.get(key)
        if entry is None:
            seen[key] = [r, at, at]
            continue
        entry[1] = min(entry[1], at)
        if at >= entry[2]:
            entry[0], entry[2] = r, at
    rows: dict[DeviceKey, DeviceRow] = {}
    for key, (r, first, last) in seen.items():
        d = r.reading.device
        rows[key] = (
            r.gateway_id,
            d.address,
            d.model,
            d.serial,
            d.firmware,
            r.reading.kind.value,
            d.battery_pct,
            first,
            last,
        )
    return rows
