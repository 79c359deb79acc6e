"""What a decoder returns, and how it becomes a wire :class:`~device_profiles.wire.Reading`.

Decoding is the gateway's hot path, so decoders build these light slotted dataclasses;
the pydantic wire objects are built only at the edge, by :func:`to_reading`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Literal

from pydantic import ValidationError

from device_profiles.errors import DecodeError
from device_profiles.ieee11073 import Num, Special
from device_profiles.units import stored_unit_of, to_stored
from device_profiles.vocabulary import KINDS, Kind, Unit
from device_profiles.wire import KNOWN_FLAGS, DeviceInfo, Reading, Value, reading_id

Censored = Literal["low", "high"]

# How far ahead of the gateway's clock a device time may be before it is not believed
# (small skews are normal; the gateway corrects them with clock_offset).
FUTURE_TOLERANCE = timedelta(minutes=10)


# Measured, Observation and DecodeContext are built several times per decoded value on the
# gateway's hot path; frozen dataclasses cost twice as much to construct, so these are
# plain slotted dataclasses. Treat them as read-only.
@dataclass(slots=True)
class Measured:
    """One component in its stored unit, with what the device sent.

    ``value`` is None when the device sent no number: ``censored`` says the true value is
    below/above the device's range (sensor LOW/HIGH), ``special`` says the device sent an
    IEEE 11073 special (NaN, NRes, ±INFINITY, reserved).
    """

    value: float | None
    unit: Unit
    original_value: float | None = None
    original_unit: str | None = None
    censored: Censored | None = None
    special: Special | None = None

    @property
    def has_number(self) -> bool:
        return self.value is not None

    def to_wire(self) -> Value | None:
        """The wire Value, or None for a special that carries neither number nor censoring."""
        if self.value is None and self.censored is None:
            return None
        return Value(
            value=self.value,
            unit=self.unit,
            censored=self.censored,
            original_value=self.original_value,
            original_unit=self.original_unit,
        )


def measured(value: Num, device_unit: str, *, censored: Censored | None = None) -> Measured:
    """Convert a decoded device value to its stored unit, keeping the original."""
    if isinstance(value, Special):
        # INFINITY from a sensor means "beyond range": the censoring direction is known.
        if censored is None and value is Special.POS_INF:
            censored = "high"
        elif censored is None and value is Special.NEG_INF:
            censored = "low"
        return Measured(None, stored_unit_of(device_unit), None, device_unit, censored, value)
    stored, unit = to_stored(value, device_unit)
    if censored is not None:
        return Measured(None, unit, value, device_unit, censored, None)
    return Measured(stored, unit, value, device_unit, None, None)


@dataclass(slots=True)
class Observation:
    """One decoded measurement: pieces of a wire Reading plus the raw bytes.

    ``device_time`` is the device's own timestamp converted to UTC (None when the
    measurement carries none or its date is unknown); ``clock_unset`` says the device
    clock looked never set (year 0, unknown fields or a reset year) or the device said so.
    """

    kind: Kind
    values: Mapping[str, Measured]
    flags: frozenset[str]
    device_time: datetime | None
    clock_unset: bool
    sequence: int | None
    raw: bytes
    characteristic: str
    received_at: datetime
    device: DeviceInfo | None = None
    # Codec-specific extras that are not wire components (trend, quality, user id...).
    extras: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.flags <= KNOWN_FLAGS:  # a codec bug, not a device problem
            raise AssertionError(f"codec produced unknown flags {sorted(self.flags - KNOWN_FLAGS)}")


def reading_discriminator(obs: Observation) -> str | int:
    """What makes this measurement unique on its device (see wire.reading_id).

    Everything used here is the same when a device sends a stored record again, so
    re-reads dedupe:

    * the record sequence number, plus the device time when there is one (meters restart
      their numbering after a memory clear; the time keeps old and new records apart);
    * else the device time, plus the raw bytes when the clock looked unset (a reset clock
      may give many records the same time);
    * else (no timestamp at all) the reception time plus the raw bytes: distinct live
      readings never collide, but re-sends of such records cannot be recognised by id
      (the gateway recognises them by their bytes within a window instead).

    A User ID (shared devices) is part of it: two users of one cuff measuring within the
    same second are two readings.
    """
    when = obs.device_time.isoformat() if obs.device_time is not None else None
    user = user_index_of(obs)
    if user is not None and when is not None:
        when = f"{when}|u{user}"
    if obs.sequence is not None:
        return obs.sequence if when is None else f"{obs.sequence}|{when}"
    if when is not None:
        return f"{when}|{obs.raw.hex()}" if obs.clock_unset else when
    return f"{obs.received_at.astimezone(UTC).isoformat()}|{obs.raw.hex()}"


# The User ID value meaning "unknown user" (BLS 1.1 §3.1.1.5, WSS 1.0 §3.2.1.3).
USER_UNKNOWN = 0xFF


def user_index_of(obs: Observation) -> int | None:
    """The device's User ID for this measurement, or None (absent or "unknown user")."""
    user = obs.extras.get("user_id")
    return user if isinstance(user, int) and user != USER_UNKNOWN else None


def has_device_identity(obs: Observation) -> bool:
    """Whether a resend of this measurement gets the same reading id (time stamp or sequence)."""
    return obs.device_time is not None or obs.sequence is not None


def to_reading(
    obs: Observation,
    device: DeviceInfo | None = None,
    *,
    clock_offset: timedelta | None = None,
    extra_flags: frozenset[str] = frozenset(),
    patient_user_index: int | None = None,
) -> Reading:
    """Build the wire Reading.

    ``clock_offset`` is the device clock minus the true time, when the gateway measured it
    (e.g. by reading Current Time); the device timestamp is then corrected and flagged.
    ``patient_user_index`` is the User ID the patient has on a shared device (the kit's
    enrolment); a measurement with another User ID is flagged ``other_user``.
    Raises DecodeError (reason starting "no_value") when a component the kind requires
    has no number and is not censored: such a measurement is kept by the caller as a
    decode failure with its raw bytes, never stored as a reading.
    """
    dev = device or obs.device
    if dev is None:
        raise ValueError("to_reading needs the device (DeviceInfo)")
    flags = set(obs.flags) | extra_flags
    measured_at = obs.received_at
    if obs.device_time is not None:
        if clock_offset is not None:
            measured_at = obs.device_time - clock_offset
            flags.add("device_clock_corrected")
        elif not obs.clock_unset:
            measured_at = obs.device_time
        if measured_at > obs.received_at + FUTURE_TOLERANCE:
            # A measurement cannot come from the future: the device clock runs ahead.
            # Stored as received (corrected), so it never sorts as the patient's latest.
            measured_at = obs.received_at
            flags.add("device_clock_corrected")
    if obs.clock_unset:
        flags.add("device_clock_unset")
    user = user_index_of(obs)
    if user is not None and patient_user_index is not None and user != patient_user_index:
        flags.add("other_user")
    values: dict[str, Value] = {}
    for name, m in obs.values.items():
        wire_value = m.to_wire()
        if wire_value is not None:
            values[name] = wire_value
    missing = [c for c in KINDS[obs.kind].required if c not in values]
    if missing or not values:
        raise DecodeError(f"no_value: {', '.join(missing) or 'no component'} without a number", obs.raw)
    identity = dev.serial or dev.address
    try:
        return Reading(
            reading_id=reading_id(identity, obs.kind, reading_discriminator(obs)),
            device=dev,
            kind=obs.kind,
            measured_at=measured_at,
            received_at=obs.received_at,
            values=values,
            flags=sorted(flags),
            raw=base64.b64encode(obs.raw).decode("ascii"),
            user_index=user,
        )
    except ValidationError as err:
        # Not expected from our codecs (the fuzz tests check); kept as the one typed error.
        raise DecodeError(f"invalid reading: {err.errors(include_url=False)[0]['msg']}", obs.raw) from err


@dataclass(slots=True)
class DecodeContext:
    """What a decoder needs besides the bytes."""

    received_at: datetime
    device: DeviceInfo | None = None
    # The zone the device's wall clock runs in (the gateway sets it; Europe/Stockholm in
    # the field). GATT timestamps carry no zone.
    device_tz: tzinfo = UTC
    # CGM: the session start (UTC), from CGM Session Start Time, so time offsets become
    # absolute times. Without it CGM readings carry no device time.
    session_start: datetime | None = None
    characteristic: str = ""
