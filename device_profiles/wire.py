"""MQTT wire schema v1: the reading batch a gateway publishes (DESIGN.md, "MQTT contract").

Topics::

    egenmon/v1/gw/{gateway_id}/readings   gateway -> ingest      QoS 1, not retained
    egenmon/v1/gw/{gateway_id}/status     gateway -> platform    QoS 1, retained, will "offline"
    egenmon/v1/gw/{gateway_id}/config     platform -> gateway    QoS 1, retained

Ingest decodes a readings message with one call, :func:`decode_readings`: a well-formed
message in one validation pass, anything else in two steps (:func:`parse_envelope` checks
the batch around the readings, :func:`parse_reading` each reading on its own) so that one
bad reading never costs its neighbours. Its result, a :class:`ReadingsMessage`, holds the
typed readings and the refused ones with their reasons; nothing downstream parses again.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from device_profiles.errors import WireFormatError
from device_profiles.vocabulary import (
    BP_MIN_PULSE_PRESSURE_MMHG,
    COMPONENTS,
    KINDS,
    SPO2_VALIDATED_LOW,
    Kind,
    Unit,
)

SCHEMA_VERSION = 1
TOPIC_ROOT = "egenmon/v1/gw"
READINGS_SUBSCRIPTION = f"$share/ingest/{TOPIC_ROOT}/+/readings"
GATEWAY_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{2,62}$"
_GATEWAY_ID_RE = re.compile(GATEWAY_ID_PATTERN)
MAX_READINGS_PER_MESSAGE = 1000
# The largest readings message, also the broker's message_size_limit (deploy/mosquitto).
# A reading as gateways send it is 320-460 bytes of JSON; the heaviest legitimate one
# (symptoms: 8 components with original values, full-length model/serial/firmware, six
# flags, 64 GATT bytes) is about 1,600 bytes, so MAX_READINGS_PER_MESSAGE of those is
# about 1.6 MB. 2 MiB leaves room for that and nothing more.
MAX_MESSAGE_BYTES = 2 * 1024 * 1024

# Flags a reading may carry. Device-reported flags come from the GATT status fields;
# the gateway adds the clock flags.
KNOWN_FLAGS = frozenset(
    {
        "body_movement",
        "cuff_fit_loose",
        "irregular_pulse",
        "pulse_rate_exceeds_upper",
        "pulse_rate_below_lower",
        "improper_position",
        "device_clock_unset",
        "device_clock_corrected",
        "sensor_low",
        "sensor_high",
        "sensor_malfunction",
        "calibration_recommended",
        "meal_preprandial",
        "meal_postprandial",
        "meal_fasting",
        "meal_casual",
        "meal_bedtime",
        "measurement_unstable",
        "low_perfusion",
        "from_stored_records",
        "low_battery",
        # A shared cuff or scale said another user (its User ID is not the patient's):
        # kept and shown, never credited to the patient.
        "other_user",
        # Set by ingest on a weight far from the patient's recent ones (someone else on a
        # scale without users).
        "probably_someone_else",
    }
)


def readings_topic(gateway_id: str) -> str:
    return f"{TOPIC_ROOT}/{gateway_id}/readings"


def status_topic(gateway_id: str) -> str:
    return f"{TOPIC_ROOT}/{gateway_id}/status"


def config_topic(gateway_id: str) -> str:
    return f"{TOPIC_ROOT}/{gateway_id}/config"


def gateway_id_from_topic(topic: str) -> str:
    """The authoritative gateway id of a message is the one in its topic."""
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:3]) != TOPIC_ROOT or not _GATEWAY_ID_RE.match(parts[3]):
        raise WireFormatError("bad_topic", detail=topic)
    return parts[3]


def reading_id(device_identity: str, kind: Kind | str, discriminator: str | int) -> uuid.UUID:
    """Deterministic reading id: the same stored record read twice gets the same id.

    ``device_identity`` is the device's serial number, or its address when it has none;
    ``discriminator`` is the device's record sequence number when it has one, otherwise its
    timestamp in ISO 8601.
    """
    key = f"egenmon/v1|{device_identity}|{kind}|{discriminator}".encode()
    return uuid.UUID(bytes=hashlib.sha256(key).digest()[:16], version=5)


class _Strict(BaseModel):
    # No NaN or infinities anywhere (JSON 1e999 parses as infinity): nothing downstream can use them.
    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=256, allow_inf_nan=False)


class DeviceInfo(_Strict):
    address: str = Field(min_length=1, max_length=64)
    model: str = Field(min_length=1, max_length=128)
    serial: str | None = Field(default=None, max_length=128)
    firmware: str | None = Field(default=None, max_length=64)
    battery_pct: int | None = Field(default=None, ge=0, le=100)


class Value(_Strict):
    """One component in its stored unit. ``value`` is None for a censored or NaN reading."""

    value: float | None = Field(allow_inf_nan=False)
    unit: Unit
    # Sensor LOW/HIGH: the true value is below/above the device's range; stored as censored.
    censored: Literal["low", "high"] | None = None
    # What the device sent, for audit (CLINICAL_RULES.md: keep the original value and unit).
    original_value: float | None = Field(default=None, allow_inf_nan=False)
    original_unit: str | None = Field(default=None, max_length=32)

    @model_validator(mode="after")
    def _value_or_censored(self) -> Value:
        if self.value is None and self.censored is None:
            raise ValueError("value is null but the reading is not censored")
        return self


class Reading(_Strict):
    reading_id: uuid.UUID
    device: DeviceInfo
    kind: Kind
    measured_at: AwareDatetime
    received_at: AwareDatetime
    values: dict[str, Value] = Field(min_length=1, max_length=16)
    flags: list[str] = Field(default_factory=list, max_length=32)
    raw: str | None = Field(default=None, max_length=8192, description="GATT bytes, base64")
    # The device's User ID (BLS/WSS "User ID" field, 0-254) when the device sent one; the
    # "unknown user" value 0xFF is carried as None. Additive: absent from older gateways.
    user_index: int | None = Field(default=None, ge=0, le=254)

    @model_validator(mode="after")
    def _components_units_and_flags(self) -> Reading:
        # Runs for every reading ingest receives, so it is one Python call with set and dict
        # look-ups; the messages are worked out only for a reading that fails.
        values = self.values
        allowed = _KIND_COMPONENTS[self.kind]
        for name, v in values.items():
            if name not in allowed or v.unit is not _COMPONENT_UNITS.get(name):
                raise ValueError(_component_problem(self.kind, values))
        for name in _KIND_REQUIRED[self.kind]:
            if name not in values:
                raise ValueError(_component_problem(self.kind, values))
        flags = self.flags
        if flags and not KNOWN_FLAGS.issuperset(flags):
            raise ValueError(f"unknown flags {sorted(set(flags) - KNOWN_FLAGS)}")
        return self


_COMPONENT_UNITS: dict[str, Unit] = {name: comp.unit for name, comp in COMPONENTS.items()}
_KIND_COMPONENTS: dict[Kind, frozenset[str]] = {kind: frozenset(spec.components) for kind, spec in KINDS.items()}
_KIND_REQUIRED: dict[Kind, tuple[str, ...]] = {kind: spec.required for kind, spec in KINDS.items()}


def _component_problem(kind: Kind, values: dict[str, Value]) -> str:
    """What is wrong with a reading's components, in the order a reader fixes them."""
    for name, v in values.items():
        comp = COMPONENTS.get(name)
        if comp is None:
            return f"unknown component {name!r}"
        if v.unit != comp.unit:
            return f"component {name!r} must be in {comp.unit.value}, not {v.unit.value}"
    spec = KINDS[kind]
    extra = sorted(set(values) - set(spec.components))
    if extra:
        return f"components {extra} do not belong to kind {kind.value}"
    missing = [c for c in spec.required if c not in values]
    return f"kind {kind.value} needs components {missing}"


class Envelope(_Strict):
    """The batch around the readings; readings are left unparsed for per-reading checks."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    schema_: Literal[1] = Field(alias="schema")
    gateway_id: Annotated[str, Field(pattern=GATEWAY_ID_PATTERN)]
    seq: int = Field(ge=0)
    sent_at: AwareDatetime
    readings: list[Any] = Field(max_length=MAX_READINGS_PER_MESSAGE)


class ReadingBatch(_Strict):
    """A whole batch, typed. Gateways build this; ingest uses the two-step parse instead."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)

    schema_: Literal[1] = Field(default=1, alias="schema")
    gateway_id: Annotated[str, Field(pattern=GATEWAY_ID_PATTERN)]
    seq: int = Field(ge=0)
    sent_at: AwareDatetime
    readings: list[Reading] = Field(max_length=MAX_READINGS_PER_MESSAGE)

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()


def _explain(err: ValidationError) -> str:
    parts = []
    for e in err.errors(include_url=False)[:5]:
        loc = ".".join(str(p) for p in e["loc"])
        parts.append(f"{loc}: {e['msg']}" if loc else e["msg"])
    return "; ".join(parts)


def parse_envelope(payload: bytes, topic_gateway_id: str) -> Envelope:
    """Parse a readings message; raise WireFormatError with a short machine reason."""
    if len(payload) > MAX_MESSAGE_BYTES:
        raise WireFormatError("payload_too_large", detail=f"{len(payload)} bytes")
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WireFormatError("bad_json", detail=str(err)) from err
    if not isinstance(doc, dict):
        raise WireFormatError("bad_schema", detail="payload is not a JSON object")
    if doc.get("schema") != SCHEMA_VERSION:
        raise WireFormatError("unsupported_schema_version", detail=repr(doc.get("schema")))
    try:
        env = Envelope.model_validate(doc)
    except ValidationError as err:
        raise WireFormatError("bad_schema", detail=_explain(err)) from err
    if env.gateway_id != topic_gateway_id:
        raise WireFormatError(
            "gateway_id_mismatch",
            detail=f"payload says {env.gateway_id!r}, topic says {topic_gateway_id!r}",
        )
    return env


def parse_reading(doc: Any) -> Reading:
    try:
        return Reading.model_validate(doc)
    except ValidationError as err:
        raise WireFormatError("bad_reading", detail=_explain(err)) from err


# No text of wire v1 holds NUL: JSON allows it (as this escape, or invalid but seen, raw),
# PostgreSQL text and jsonb, where readings end up, cannot hold it.
_NUL_MARKERS = (b"\\u0000", b"\x00")
NUL_DETAIL = "a text field holds a NUL character, which PostgreSQL cannot store"


def has_nul(doc: Any) -> bool:
    """Whether any string (key or value) in parsed JSON holds a NUL character."""
    if isinstance(doc, str):
        return "\x00" in doc
    if isinstance(doc, dict):
        return any("\x00" in k or has_nul(v) for k, v in doc.items())
    if isinstance(doc, list):
        return any(has_nul(v) for v in doc)
    return False


def may_hold_nul(payload: bytes) -> bool:
    """False when ``payload`` surely holds no NUL in any JSON string.

    Two substring scans at C speed; a hit (or a literal backslash-u0000 in some text) is
    looked at properly by :func:`has_nul` on the parsed document.
    """
    return any(m in payload for m in _NUL_MARKERS)


class _TypedEnvelope(Envelope):
    """The envelope with its readings typed: one validation pass for a well-formed message.

    Accepts exactly what ``parse_envelope`` plus ``parse_reading`` for every reading accept;
    anything it refuses is parsed again the two-step way, which says what was wrong with
    which reading and keeps the good ones.
    """

    readings: list[Reading] = Field(max_length=MAX_READINGS_PER_MESSAGE)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the receiver refuses a reading: a short machine reason and a detail."""

    reason: str
    detail: str | None


@dataclass(frozen=True, slots=True)
class RefusedReading:
    """A reading of a message that could not be taken, with its reason."""

    index: int
    reason: str
    detail: str | None
    # The reading's JSON as it came.
    doc: Any


_View = TypeVar("_View")


@dataclass(frozen=True, slots=True)
class ReadingsMessage(Generic[_View]):
    """A decoded readings message: the typed readings and the refused ones, each by index."""

    gateway_id: str
    sent_at: datetime
    # (index in the message, the reading, its JSON as it came or None when the message
    # was well-formed and validated in one pass, what the receiver's ``accept`` made of it).
    readings: list[tuple[int, Reading, Any, _View]]
    refused: list[RefusedReading]


def decode_readings(topic: str, payload: bytes, accept: Callable[[Reading], Refusal | _View]) -> ReadingsMessage[_View]:
    """Decode a readings message once; raise WireFormatError when the message as a whole is bad.

    The topic's gateway id is authoritative (``bad_topic``, ``gateway_id_mismatch``). A
    reading is refused for any text holding NUL (``nul_in_text``, before its schema), for
    failing the wire schema (``bad_reading``), or when ``accept`` (the receiver's own rules,
    run once on each typed reading) returns a :class:`Refusal`; whatever else ``accept``
    returns is kept with the reading. Refused readings carry their JSON as it came.
    """
    gateway_id = gateway_id_from_topic(topic)
    if topic.rsplit("/", 1)[1] != "readings":
        raise WireFormatError("bad_topic", detail=topic)
    if not may_hold_nul(payload):
        try:
            env = _TypedEnvelope.model_validate_json(payload)
        except ValidationError:
            env = None
        if env is not None and env.gateway_id == gateway_id:
            views = [accept(r) for r in env.readings]
            # A reading the receiver refuses (rare) sends the message the two-step way too,
            # which keeps each refused reading's JSON as it came.
            if not any(isinstance(v, Refusal) for v in views):
                return ReadingsMessage(
                    gateway_id,
                    env.sent_at,
                    [(i, r, None, v) for i, (r, v) in enumerate(zip(env.readings, views, strict=True))],  # type: ignore[misc]
                    [],
                )
    plain = parse_envelope(payload, gateway_id)
    readings: list[tuple[int, Reading, Any, _View]] = []
    refused: list[RefusedReading] = []
    for index, doc in enumerate(plain.readings):
        if has_nul(doc):
            refused.append(RefusedReading(index, "nul_in_text", NUL_DETAIL, doc))
            continue
        try:
            reading = parse_reading(doc)
        except WireFormatError as err:
            refused.append(RefusedReading(index, err.reason, err.detail, doc))
            continue
        view = accept(reading)
        if isinstance(view, Refusal):
            refused.append(RefusedReading(index, view.reason, view.detail, doc))
            continue
        readings.append((index, reading, doc, view))
    return ReadingsMessage(gateway_id, plain.sent_at, readings, refused)


_PLAUSIBLE: dict[str, tuple[float, float]] = {
    name: (comp.plausible_low, comp.plausible_high) for name, comp in COMPONENTS.items()
}


def plausibility_problems(kind: Kind, values: dict[str, Value]) -> list[str]:
    """Reasons to reject the reading as implausible (CLINICAL_RULES.md), empty if none.

    Censored values are never implausible: they carry no number. The previous-day weight
    check needs history and is done where history is available (ingest).
    """
    problems: list[str] = []
    for name, v in values.items():
        x = v.value
        if x is None:
            continue
        low, high = _PLAUSIBLE[name]
        if not low <= x <= high:
            problems.append(f"{name} {x:g} outside {low:g}-{high:g} {COMPONENTS[name].unit.value}")
    if kind is Kind.BLOOD_PRESSURE:
        sys_v, dia_v = values["systolic"].value, values["diastolic"].value
        if sys_v is not None and dia_v is not None:
            if sys_v <= dia_v:
                problems.append("systolic not above diastolic")
            elif sys_v - dia_v < BP_MIN_PULSE_PRESSURE_MMHG:
                problems.append(f"pulse pressure {sys_v - dia_v:g} below {BP_MIN_PULSE_PRESSURE_MMHG:g} mm[Hg]")
    return problems


def spo2_outside_validated_range(values: dict[str, Value]) -> bool:
    v = values.get("spo2")
    return v is not None and v.value is not None and v.value < SPO2_VALIDATED_LOW


def sort_key(reading: Reading) -> tuple[datetime, str]:
    return (reading.measured_at, str(reading.reading_id))


def batch_of(gateway_id: str, seq: int, sent_at: datetime, readings: Sequence[Reading]) -> ReadingBatch:
    return ReadingBatch(gateway_id=gateway_id, seq=seq, sent_at=sent_at, readings=list(readings))
