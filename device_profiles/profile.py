"""Device profiles and the registry that picks one for a discovered device.

A :class:`DeviceProfile` is data: which services identify the device, which
characteristics to subscribe to or read (and whether they indicate or notify), and the
model's quirks (bonding, stored records on connect, RACP, clock setting). The gateway
reads these fields instead of branching on device models. Its :meth:`DeviceProfile.decode`
turns one characteristic value into :class:`~device_profiles.observation.Observation`\\ s.
"""

from __future__ import annotations

import fnmatch
import logging
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from enum import StrEnum
from typing import Protocol

from device_profiles.errors import DecodeError
from device_profiles.gatt import normalize_uuid
from device_profiles.observation import DecodeContext, Observation
from device_profiles.vocabulary import Kind
from device_profiles.wire import DeviceInfo

logger = logging.getLogger(__name__)


class Mode(StrEnum):
    """How the gateway gets a characteristic's value."""

    INDICATE = "indicate"  # subscribe; acknowledged by the stack (BP, weight, thermometer)
    NOTIFY = "notify"  # subscribe; unacknowledged (glucose, CGM, continuous SpO2)
    READ = "read"  # read once after connecting
    WRITE = "write"  # written by the gateway (clock, control points)


class Role(StrEnum):
    MEASUREMENT = "measurement"  # yields observations
    CONTEXT = "context"  # annotates a measurement (Glucose Measurement Context)
    INTERMEDIATE = "intermediate"  # live progress, never stored (cuff pressure)
    RACP = "racp"  # Record Access Control Point: write requests, indications back
    SESSION_START = "session_start"  # CGM Session Start Time: read, makes offsets absolute
    CLOCK = "clock"  # Current Time / Date Time: read to measure skew, write to set
    BATTERY = "battery"
    INFO = "info"  # Device Information strings
    FEATURE = "feature"


@dataclass(frozen=True, slots=True)
class CharacteristicSpec:
    uuid: str
    mode: Mode
    role: Role
    # Optional characteristics are used when the device has them.
    optional: bool = False


class Codec(Protocol):
    """What a measurement dataclass offers (see device_profiles.codecs)."""

    @classmethod
    def from_bytes(cls, data: bytes) -> Codec: ...

    def observations(self, raw: bytes, ctx: DecodeContext) -> list[Observation]: ...


Decoder = Callable[[bytes, DecodeContext], list[Observation]]


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    """One device type or model. Frozen data; quirks are fields, not code."""

    id: str
    display_name: str
    kind: Kind
    service_uuids: tuple[str, ...]
    characteristics: tuple[CharacteristicSpec, ...]
    name_patterns: tuple[str, ...] = ()
    manufacturer_ids: tuple[int, ...] = ()
    # The device only indicates after pairing/bonding (encryption required).
    needs_bonding: bool = False
    # The device pushes its stored measurements as soon as it is connected and subscribed.
    sends_stored_records_on_connect: bool = False
    # Stored records are fetched through the Record Access Control Point (0x2A52).
    uses_racp: bool = False
    # The gateway should set the device clock (Current Time 0x2A2B, else Date Time 0x2A08).
    set_clock: bool = False
    # Where the profile came from: "sig" or the vendor profile file's name.
    source: str = "sig"
    decoders: Mapping[str, Decoder] = field(default_factory=dict, compare=False, repr=False)

    @property
    def subscriptions(self) -> tuple[CharacteristicSpec, ...]:
        """Characteristics to subscribe to, in the order the gateway should enable them."""
        return tuple(c for c in self.characteristics if c.mode in (Mode.INDICATE, Mode.NOTIFY))

    @property
    def reads(self) -> tuple[CharacteristicSpec, ...]:
        return tuple(c for c in self.characteristics if c.mode is Mode.READ)

    def characteristic(self, role: Role) -> CharacteristicSpec | None:
        return next((c for c in self.characteristics if c.role is role), None)

    def decode(
        self,
        char_uuid: str,
        data: bytes | bytearray,
        *,
        received_at: datetime,
        device: DeviceInfo | None = None,
        device_tz: tzinfo = UTC,
        session_start: datetime | None = None,
    ) -> list[Observation]:
        """Decode one characteristic value into observations (empty for non-measurements).

        Raises DecodeError (with the raw bytes and the reason) for anything malformed,
        and for a characteristic this profile has no decoder for.
        """
        if received_at.tzinfo is None:
            raise ValueError("received_at must be timezone-aware (UTC)")
        raw = bytes(data)
        uuid = char_uuid if char_uuid in self.decoders else normalize_uuid(char_uuid)
        decoder = self.decoders.get(uuid)
        if decoder is None:
            raise DecodeError(f"profile {self.id} has no decoder for {uuid}", raw, characteristic=uuid)
        ctx = DecodeContext(received_at, device, device_tz, session_start, uuid)
        try:
            return decoder(raw, ctx)
        except DecodeError:
            raise
        except (ValueError, IndexError, KeyError, OverflowError, TypeError, struct.error) as err:
            # Never expected (the fuzz tests look for these); if one slips through, the
            # gateway still gets the one typed error with the bytes kept.
            logger.warning("decoder_bug profile=%s characteristic=%s error=%r", self.id, uuid, err)
            raise DecodeError(f"internal decoder error: {err!r}", raw, characteristic=uuid) from err


def codec_decoder(codec: type[Codec]) -> Decoder:
    """A Decoder for a measurement dataclass with from_bytes()/observations()."""
    from_bytes = codec.from_bytes

    def decode(raw: bytes, ctx: DecodeContext) -> list[Observation]:
        return from_bytes(raw).observations(raw, ctx)

    return decode


def no_observations(raw: bytes, ctx: DecodeContext) -> list[Observation]:
    """For characteristics that are read for their own sake (battery, clock, info)."""
    return []


def checked_no_observations(codec: type[Codec]) -> Decoder:
    """Validate the bytes with the codec but produce no observation."""
    from_bytes = codec.from_bytes

    def decode(raw: bytes, ctx: DecodeContext) -> list[Observation]:
        from_bytes(raw)
        return []

    return decode


def _name_matches(patterns: tuple[str, ...], name: str | None) -> bool:
    if not name or not patterns:
        return False
    low = name.lower()
    return any(fnmatch.fnmatchcase(low, p.lower()) for p in patterns)


def match_score(
    profile: DeviceProfile,
    service_uuids: frozenset[str],
    name: str | None,
    manufacturer_data: Mapping[int, bytes],
) -> int:
    """How well an advertisement fits a profile; 0 = not at all.

    A profile that names models (name patterns or manufacturer ids) matches only when
    one of those fits: a service UUID alone is not enough for a model-specific profile,
    so a region's vendor profile never captures other vendors' devices. Generic SIG
    profiles match on their service UUIDs. A name match outweighs a manufacturer id,
    which outweighs each matching service.
    """
    by_name = _name_matches(profile.name_patterns, name)
    by_maker = any(m in manufacturer_data for m in profile.manufacturer_ids)
    services = sum(1 for s in profile.service_uuids if s in service_uuids)
    if (profile.name_patterns or profile.manufacturer_ids) and not (by_name or by_maker):
        return 0
    if not (by_name or by_maker or services):
        return 0
    return 100 * by_name + 50 * by_maker + services


class Registry:
    """An ordered set of profiles; vendor (model-specific) profiles win over generic ones."""

    def __init__(self, profiles: Iterable[DeviceProfile]) -> None:
        self._profiles: tuple[DeviceProfile, ...] = tuple(profiles)
        ids = [p.id for p in self._profiles]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate profile ids {dupes}")
        self._by_id = {p.id: p for p in self._profiles}

    @property
    def profiles(self) -> tuple[DeviceProfile, ...]:
        return self._profiles

    def get(self, profile_id: str) -> DeviceProfile:
        try:
            return self._by_id[profile_id]
        except KeyError:
            raise KeyError(f"no device profile {profile_id!r}") from None

    def __contains__(self, profile_id: object) -> bool:
        return profile_id in self._by_id

    def __len__(self) -> int:
        return len(self._profiles)

    def with_profiles(self, profiles: Iterable[DeviceProfile]) -> Registry:
        """A new registry with ``profiles`` added (same id replaces the old one)."""
        extra = list(profiles)
        replaced = {p.id for p in extra}
        return Registry([*extra, *(p for p in self._profiles if p.id not in replaced)])

    def match(
        self,
        advertised_service_uuids: Iterable[str],
        name: str | None = None,
        manufacturer_data: Mapping[int, bytes] | None = None,
    ) -> DeviceProfile | None:
        services = frozenset(normalize_uuid(u) for u in advertised_service_uuids)
        maker = manufacturer_data or {}
        best: DeviceProfile | None = None
        best_score = 0
        for p in self._profiles:
            score = match_score(p, services, name, maker)
            if score > best_score:  # ties keep the earlier profile
                best, best_score = p, score
        return best
