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

from device_profiles.errors import DecodeError
from device_profiles.ieee11073 import Num, Special
from device_profiles.units import stored_unit_of, to_stored
from device_profiles.vocabulary import KINDS, Kind, Unit
from device_profiles.wire import KNOWN_FLAGS, DeviceInfo, Reading, Value, reading_id

Censored = Literal["low", "high"]


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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
        unknown = self.flags - KNOWN_FLAGS
        if unknown:  # a codec bug, not a device problem
            raise AssertionError(f"codec produced unknown flags {sorted(unknown)}")


def reading_discriminator(obs: Observation) -> str | int:
    """What makes this measurement unique on its device (see wire.reading_id).

    The record sequence number when the device has one; otherwise the device timestamp
    when the clock is trustworthy. With neither, the reception time plus the raw bytes,
    so that re-reads cannot be told apart but distinct live readings never collide.
    """
    if obs.sequence is not None:
        return obs.sequence
    if obs.device_time is not None and not obs.clock_unset:
        return obs.device_time.isoformat()
    return f"{obs.received_at.astimezone(UTC).isoformat()}|{obs.raw.hex()}"


def to_reading(
    obs: Observation,
    device: DeviceInfo | None = None,
    *,
    clock_offset: timedelta | None = None,
    extra_flags: frozenset[str] = frozenset(),
) -> Reading:
    """Build the wire Reading.

    ``clock_offset`` is the device clock minus the true time, when the gateway measured it
    (e.g. by reading Current Time); the device timestamp is then corrected and flagged.
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
    if obs.clock_unset:
        flags.add("device_clock_unset")
    values: dict[str, Value] = {}
    for name, m in obs.values.items():
        wire_value = m.to_wire()
        if wire_value is not None:
            values[name] = wire_value
    missing = [c for c in KINDS[obs.kind].required if c not in values]
    if missing or not values:
        raise DecodeError(f"no_value: {', '.join(missing) or 'no component'} without a number", obs.raw)
    identity = dev.serial or dev.address
    return Reading(
        reading_id=reading_id(identity, obs.kind, reading_discriminator(obs)),
        device=dev,
        kind=obs.kind,
        measured_at=measured_at,
        received_at=obs.received_at,
        values=values,
        flags=sorted(flags),
        raw=base64.b64encode(obs.raw).decode("ascii"),
    )


@dataclass(frozen=True, slots=True)
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
