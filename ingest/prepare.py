"""Turning received MQTT messages into rows: pure, no I/O.

A message is parsed in two steps (``parse_envelope``, then ``parse_reading`` per reading) so
that one bad reading never costs its neighbours. Whatever cannot become an observation
becomes a dead letter carrying its reason and bytes; nothing is dropped. The patient is
not known here: it is resolved inside the storing transaction (:mod:`ingest.store`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field, ValidationError

from device_profiles.errors import WireFormatError
from device_profiles.messages import OFFLINE_PAYLOAD, GatewayStatus
from device_profiles.wire import (
    MAX_MESSAGE_BYTES,
    MAX_READINGS_PER_MESSAGE,
    TOPIC_ROOT,
    Envelope,
    Reading,
    gateway_id_from_topic,
    parse_envelope,
    parse_reading,
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
# PostgreSQL text and jsonb cannot hold NUL; JSON carries it as this escape.
_NUL_MARKERS = (b"\\u0000", b"\x00")
SPO2_FLAG_REASON = "spo2 below the validated range of oximeters (70 %)"
# Reasons start with a stable code the staff pages translate (clinic_api/labels.py).
OTHER_USER_REASON = "other_user: measured by user {user} of a shared device, not the patient"


class _TypedEnvelope(Envelope):
    """The envelope with its readings typed: one validation pass for a well-formed message.

    Accepts exactly what ``parse_envelope`` plus ``parse_reading`` for every reading accept;
    anything it refuses is parsed again the two-step way, which says what was wrong with
    which reading and keeps the good ones.
    """

    readings: list[Reading] = Field(max_length=MAX_READINGS_PER_MESSAGE)


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


@dataclass(frozen=True, slots=True)
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
    received_at: datetime

    @property
    def measured_at(self) -> datetime:
        return self.reading.measured_at


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


def has_nul(doc: Any) -> bool:
    """Whether any string (key or value) in parsed JSON holds a NUL character."""
    if isinstance(doc, str):
        return "\x00" in doc
    if isinstance(doc, dict):
        return any("\x00" in k or has_nul(v) for k, v in doc.items())
    if isinstance(doc, list):
        return any(has_nul(v) for v in doc)
    return False


def _may_hold_nul(payload: bytes) -> bool:
    # Two substring scans at C speed; a hit (or a literal backslash-u0000 in some text) is
    # looked at properly by has_nul on the parsed document.
    return any(m in payload for m in _NUL_MARKERS)


def _out_of_range(reading: Reading, received_at: datetime) -> tuple[str, str] | None:
    latest = received_at + MEASURED_AT_MAX_AHEAD
    for name, t in (("measured_at", reading.measured_at), ("received_at", reading.received_at)):
        if not MEASURED_AT_FLOOR <= t <= latest:
            detail = (
                f"{name} {t.isoformat()} outside {MEASURED_AT_FLOOR.date().isoformat()}"
                f" .. {latest.isoformat(timespec='seconds')} (ingest's clock + {MEASURED_AT_MAX_AHEAD})"
            )
            return f"{name}_out_of_range", detail
    return None


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
        gateway_id = gateway_id_from_topic(msg.topic)
        if parts[4] != "readings":
            raise WireFormatError("bad_topic", detail=msg.topic)
        if _prepare_fast(batch, msg, gateway_id):
            return
        env = parse_envelope(msg.payload, gateway_id)
    except WireFormatError as err:
        gw = parts[3] if len(parts) == 5 else None
        batch.dead_letters.append(_dead(msg, gw, err.reason, err.detail))
        return
    except Exception as err:
        batch.dead_letters.append(_dead(msg, None, "unparseable", f"{type(err).__name__}: {err}"))
        return
    batch.sent_at.append(env.sent_at)
    for index, doc in enumerate(env.readings):

        def dead(reason: str, detail: str | None, doc: Any = doc, index: int = index) -> None:
            payload = json.dumps(doc, separators=(",", ":"), default=str).encode()
            batch.dead_letters.append(
                DeadLetter(msg.topic, gateway_id, index, reason, clean_text(detail), payload, msg.received_at)
            )

        # Before the COPY, not by it: a refused COPY costs the whole batch its transaction.
        if has_nul(doc):
            dead("nul_in_text", "a text field holds a NUL character, which PostgreSQL cannot store")
            continue
        try:
            reading = parse_reading(doc)
        except WireFormatError as err:
            dead(err.reason, err.detail)
            continue
        out_of_range = _out_of_range(reading, msg.received_at)
        if out_of_range is not None:
            dead(*out_of_range)
            continue
        status, reason = judge(reading)
        batch.readings.append(
            PreparedReading(gateway_id, msg.topic, index, reading, status, reason, doc, msg.received_at)
        )


def _prepare_fast(batch: PreparedBatch, msg: Incoming, gateway_id: str) -> bool:
    """The common case, a well-formed message, in one validation pass; False if it is not."""
    if _may_hold_nul(msg.payload):
        return False
    try:
        env = _TypedEnvelope.model_validate_json(msg.payload)
    except ValidationError:
        return False
    if env.gateway_id != gateway_id:
        return False
    # Rare: then the two-step way says which readings are out of range and keeps the rest.
    if any(_out_of_range(r, msg.received_at) is not None for r in env.readings):
        return False
    batch.sent_at.append(env.sent_at)
    for index, reading in enumerate(env.readings):
        status, reason = judge(reading)
        batch.readings.append(
            PreparedReading(gateway_id, msg.topic, index, reading, status, reason, None, msg.received_at)
        )
    return True


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
    if _may_hold_nul(msg.payload) and has_nul(json.loads(msg.payload)):
        detail = "a text field holds a NUL character, which PostgreSQL cannot store"
        batch.dead_letters.append(_dead(msg, gateway_id, "nul_in_text", detail))
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
