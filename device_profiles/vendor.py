"""Declarative vendor profiles: a device model described by one TOML file, no code.

No Bluetooth SIG service covers spirometry or peak flow, and some models of other
types use proprietary characteristics. A region adds such a model by dropping a
``<model>.toml`` file (format in device_profiles/README.md, example in
``device_profiles/profiles/``) into the gateway's profile directory.

Parsing and validation (pydantic) happen once when the file is loaded; decoding uses a
precompiled plan of struct objects, so it is as fast as the hand-written codecs.
"""

from __future__ import annotations

import math
import struct
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from device_profiles.errors import DecodeError, DeviceProfilesError, UnitError
from device_profiles.gatt import DATE_TIME_SIZE, DateTime, normalize_uuid
from device_profiles.ieee11073 import SFLOAT_TABLE, Num, Special, decode_float, encode_float, encode_sfloat
from device_profiles.observation import DecodeContext, Measured, Observation, measured
from device_profiles.profile import CharacteristicSpec, Decoder, DeviceProfile, Mode, Role, no_observations
from device_profiles.units import stored_unit_of
from device_profiles.vocabulary import COMPONENTS, KINDS, Kind
from device_profiles.wire import KNOWN_FLAGS


class ProfileFileError(DeviceProfilesError):
    """A vendor profile file that cannot be used; says which file and why."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


# Field types: struct format (little-endian unless "be"), size.
_INT_TYPES: dict[str, str] = {
    "uint8": "B",
    "int8": "b",
    "uint16le": "<H",
    "uint16be": ">H",
    "int16le": "<h",
    "int16be": ">h",
    "uint32le": "<I",
    "uint32be": ">I",
    "int32le": "<i",
    "int32be": ">i",
}
_OTHER_TYPES = {"uint24le": 3, "sfloat": 2, "float": 4, "float32le": 4, "datetime": DATE_TIME_SIZE}
FIELD_TYPES = frozenset(_INT_TYPES) | frozenset(_OTHER_TYPES)
_NAME_RE = r"^[a-z][a-z0-9_]{0,40}$"


def _size(type_: str) -> int:
    if type_ in _INT_TYPES:
        return struct.calcsize(_INT_TYPES[type_])
    return _OTHER_TYPES[type_]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PresentIf(_Model):
    """The field is present only when ``field & mask`` is non-zero (or zero if negate)."""

    field: str
    mask: int = Field(ge=1)
    negate: bool = False


class FieldSpec(_Model):
    name: Annotated[str, Field(pattern=_NAME_RE)]
    type: str
    # What the field means: a measured component, the device timestamp, the record
    # sequence number, status bits that map to wire flags, a constant to check, or
    # something to skip.
    role: Literal["value", "timestamp", "sequence", "flags", "constant", "ignore"] = "ignore"
    component: str | None = None
    unit: str | None = None
    scale: float = 1.0
    offset: float = 0.0
    # Raw values that mean "no measurement" (e.g. 0xFFFF), decoded as no number.
    invalid: list[int] = Field(default_factory=list, max_length=8)
    # Raw values that mean "below/above the device's range" (censored low/high).
    censored_low: list[int] = Field(default_factory=list, max_length=8)
    censored_high: list[int] = Field(default_factory=list, max_length=8)
    # For role "flags": {"0x01" = "measurement_unstable", ...}; other set bits are rejected
    # unless listed in allowed_bits.
    flag_bits: dict[str, str] = Field(default_factory=dict)
    allowed_bits: int = 0
    # For role "constant": the value the field must hold (e.g. a record type byte).
    equals: int | None = None
    present_if: PresentIf | None = None

    @field_validator("type")
    @classmethod
    def _known_type(cls, v: str) -> str:
        if v not in FIELD_TYPES:
            raise ValueError(f"unknown field type {v!r}; use one of {sorted(FIELD_TYPES)}")
        return v

    @model_validator(mode="after")
    def _role_fits(self) -> FieldSpec:
        numeric = self.type in _INT_TYPES or self.type in ("uint24le", "sfloat", "float", "float32le")
        integer = self.type in _INT_TYPES or self.type == "uint24le"
        if self.role == "value":
            if not numeric:
                raise ValueError(f"value field {self.name} must be numeric")
            if self.component is None or self.unit is None:
                raise ValueError(f"value field {self.name} needs component and unit")
            comp = COMPONENTS.get(self.component)
            if comp is None:
                raise ValueError(f"unknown component {self.component!r}")
            try:
                stored = stored_unit_of(self.unit)
            except UnitError as err:
                raise ValueError(str(err)) from err
            if stored != comp.unit:
                raise ValueError(f"unit {self.unit} does not convert to {comp.unit.value} for {self.component}")
        elif self.component is not None:
            raise ValueError(f"field {self.name}: component is only for role 'value'")
        if self.role == "timestamp" and self.type != "datetime":
            raise ValueError("timestamp fields have type 'datetime' (GATT Date Time)")
        if self.role in ("sequence", "flags", "constant") and not integer:
            raise ValueError(f"{self.role} field {self.name} must be an integer type")
        if self.role == "constant" and self.equals is None:
            raise ValueError(f"constant field {self.name} needs 'equals'")
        for name in self.flag_bits.values():
            if name not in KNOWN_FLAGS:
                raise ValueError(f"unknown wire flag {name!r}")
        for key in self.flag_bits:
            int(key, 0)
        return self


class CharacteristicFile(_Model):
    uuid: str
    mode: Mode
    role: Role = Role.MEASUREMENT
    optional: bool = False
    kind: Kind | None = None  # defaults to the profile's kind
    fields: list[FieldSpec] = Field(default_factory=list, max_length=64)

    @field_validator("uuid")
    @classmethod
    def _uuid(cls, v: str) -> str:
        return normalize_uuid(v)


class ProfileFile(_Model):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{2,80}$")]
    display_name: str = Field(max_length=128)
    kind: Kind
    service_uuids: list[str] = Field(default_factory=list)
    name_patterns: list[str] = Field(default_factory=list)
    manufacturer_ids: list[Annotated[int, Field(ge=0, le=0xFFFF)]] = Field(default_factory=list)
    needs_bonding: bool = False
    sends_stored_records_on_connect: bool = False
    uses_racp: bool = False
    set_clock: bool = False
    characteristics: list[CharacteristicFile] = Field(min_length=1, alias="characteristic")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("service_uuids")
    @classmethod
    def _uuids(cls, v: list[str]) -> list[str]:
        return [normalize_uuid(u) for u in v]

    @model_validator(mode="after")
    def _identifiable(self) -> ProfileFile:
        if not (self.service_uuids or self.name_patterns or self.manufacturer_ids):
            raise ValueError("a profile needs service_uuids, name_patterns or manufacturer_ids to be matched")
        uuids = [ch.uuid for ch in self.characteristics]
        if len(uuids) != len(set(uuids)):
            raise ValueError("a characteristic UUID is listed twice")
        for ch in self.characteristics:
            kind = ch.kind or self.kind
            integers: set[str] = set()
            seen: set[str] = set()
            components: set[str] = set()
            for f in ch.fields:
                if f.name in seen:
                    raise ValueError(f"duplicate field name {f.name!r}")
                if f.present_if is not None and f.present_if.field not in integers:
                    raise ValueError(
                        f"{f.name}: present_if refers to {f.present_if.field!r}, not an earlier integer field"
                    )
                seen.add(f.name)
                if f.type in _INT_TYPES or f.type == "uint24le":
                    integers.add(f.name)
                if f.role == "value":
                    if f.component not in KINDS[kind].components:
                        raise ValueError(f"component {f.component} does not belong to kind {kind.value}")
                    if f.component in components:
                        raise ValueError(f"component {f.component} has two fields")
                    components.add(f.component)
            for role in ("timestamp", "sequence"):
                if sum(f.role == role for f in ch.fields) > 1:
                    raise ValueError(f"more than one {role} field")
            if ch.role is Role.MEASUREMENT and not any(f.role == "value" for f in ch.fields):
                raise ValueError(f"measurement characteristic {ch.uuid} has no value field")
        return self


# ----------------------------------------------------------------------------------
# Decoding plan


@dataclass(frozen=True, slots=True)
class _Step:
    spec: FieldSpec
    size: int
    unpack: struct.Struct | None  # for integer types
    flag_bits: tuple[tuple[int, str], ...]
    known_bits: int


def _read(step: _Step, data: bytes, pos: int) -> int | Num | DateTime:
    t = step.spec.type
    if step.unpack is not None:
        return int(step.unpack.unpack_from(data, pos)[0])
    if t == "uint24le":
        return data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16
    if t == "sfloat":
        return SFLOAT_TABLE[data[pos] | data[pos + 1] << 8]
    if t == "float":  # IEEE 11073 32-bit FLOAT
        return decode_float(int.from_bytes(data[pos : pos + 4], "little"))
    if t == "float32le":  # IEEE 754 binary32, which some vendors use
        (v,) = struct.unpack_from("<f", data, pos)
        # NaN and infinities become explicit "no number" values, like IEEE 11073 specials.
        if math.isnan(v):
            return Special.NAN
        if math.isinf(v):
            return Special.POS_INF if v > 0 else Special.NEG_INF
        return float(v)
    return DateTime.checked(data, *struct.unpack_from("<HBBBBB", data, pos))


class VendorCharacteristic:
    """Decoder (and encoder, for simulators) of one characteristic of a vendor profile."""

    def __init__(self, spec: CharacteristicFile, kind: Kind, profile_id: str) -> None:
        self.spec = spec
        self.kind = kind
        self.name = f"{profile_id}:{spec.uuid}"
        steps = []
        for f in spec.fields:
            fmt = _INT_TYPES.get(f.type)
            bits = tuple((int(k, 0), v) for k, v in f.flag_bits.items())
            known = f.allowed_bits
            for b, _ in bits:
                known |= b
            steps.append(_Step(f, _size(f.type), struct.Struct(fmt) if fmt else None, bits, known))
        self.steps: tuple[_Step, ...] = tuple(steps)
        self.conditional = any(f.present_if is not None for f in spec.fields)
        self.fixed_size = sum(s.size for s in self.steps)

    def parse(self, data: bytes) -> dict[str, int | Num | DateTime]:
        """Raw field values by name (absent conditional fields are missing)."""
        if not self.conditional and len(data) != self.fixed_size:
            what = "truncated" if len(data) < self.fixed_size else "trailing bytes"
            raise DecodeError(
                f"{what}: {self.fixed_size} bytes expected, got {len(data)}", data, characteristic=self.name
            )
        out: dict[str, int | Num | DateTime] = {}
        pos = 0
        for step in self.steps:
            spec = step.spec
            cond = spec.present_if
            if cond is not None:
                ref = out.get(cond.field)
                if not isinstance(ref, int) or bool(ref & cond.mask) == cond.negate:
                    continue
            if pos + step.size > len(data):
                raise DecodeError(f"truncated: field {spec.name} at byte {pos}", data, characteristic=self.name)
            value = _read(step, data, pos)
            pos += step.size
            if spec.role == "constant" and value != spec.equals:
                raise DecodeError(
                    f"field {spec.name} is {value}, expected {spec.equals}", data, characteristic=self.name
                )
            if spec.role == "flags" and isinstance(value, int) and value & ~step.known_bits:
                raise DecodeError(f"reserved bits set in {spec.name} (0x{value:x})", data, characteristic=self.name)
            out[spec.name] = value
        if pos != len(data):
            raise DecodeError(f"trailing bytes: {len(data) - pos} after the last field", data, characteristic=self.name)
        return out

    def _value(self, spec: FieldSpec, raw: int | Num) -> Measured:
        assert spec.unit is not None
        if isinstance(raw, int):
            if raw in spec.invalid:
                return measured(Special.NAN, spec.unit)
            if raw in spec.censored_low:
                return measured(Special.NAN, spec.unit, censored="low")
            if raw in spec.censored_high:
                return measured(Special.NAN, spec.unit, censored="high")
            return measured(round(raw * spec.scale + spec.offset, 9), spec.unit)
        if isinstance(raw, Special):
            return measured(raw, spec.unit)
        return measured(round(raw * spec.scale + spec.offset, 9), spec.unit)

    def observations(self, raw: bytes, ctx: DecodeContext) -> list[Observation]:
        fields = self.parse(raw)
        if self.spec.role is not Role.MEASUREMENT:
            return []
        values: dict[str, Measured] = {}
        flags: set[str] = set()
        ts: DateTime | None = None
        seq: int | None = None
        for step in self.steps:
            spec = step.spec
            if spec.name not in fields:
                continue
            v = fields[spec.name]
            if spec.role == "value" and spec.component is not None and not isinstance(v, DateTime):
                values[spec.component] = self._value(spec, v)
            elif spec.role == "timestamp" and isinstance(v, DateTime):
                ts = v
            elif spec.role == "sequence" and isinstance(v, int):
                seq = v
            elif spec.role == "flags" and isinstance(v, int):
                flags.update(name for bit, name in step.flag_bits if v & bit)
        when = None if ts is None else ts.to_datetime(ctx.device_tz)
        unset = False if ts is None else ts.clock_unset
        return [
            Observation(
                self.kind, values, frozenset(flags), when, unset, seq, raw,
                self.spec.uuid, ctx.received_at, ctx.device, {},
            )
        ]  # fmt: skip

    def encode(self, values: Mapping[str, int | Num | DateTime]) -> bytes:
        """Bytes for the given field values, by field name (constants are filled in,
        missing integers are 0). For simulators: a value field takes the value in the
        field's unit; integer fields apply the inverse of scale and offset."""
        out = bytearray()
        known: dict[str, int] = {}
        for step in self.steps:
            spec = step.spec
            cond = spec.present_if
            if cond is not None and bool(known.get(cond.field, 0) & cond.mask) == cond.negate:
                continue
            v: int | Num | DateTime = spec.equals if spec.equals is not None else values.get(spec.name, 0)
            t = spec.type
            if t == "datetime":
                if not isinstance(v, DateTime):
                    raise TypeError(f"field {spec.name} needs a DateTime")
                out += bytes(v)
                continue
            if isinstance(v, DateTime):
                raise TypeError(f"field {spec.name} is not a timestamp")
            if t == "sfloat":
                out += encode_sfloat(v).to_bytes(2, "little")
            elif t == "float":
                out += encode_float(v).to_bytes(4, "little")
            elif t == "float32le":
                out += struct.pack("<f", float("nan") if isinstance(v, Special) else v)
            else:
                if isinstance(v, Special):
                    # "No number" in an integer field is the profile's invalid marker.
                    if not spec.invalid:
                        raise TypeError(f"integer field {spec.name} has no invalid marker for {v}")
                    raw = spec.invalid[0]
                elif spec.role == "value":
                    raw = round((v - spec.offset) / spec.scale)
                else:
                    raw = int(v)
                known[spec.name] = raw
                if step.unpack is not None:
                    out += step.unpack.pack(raw)
                else:  # uint24le
                    out += raw.to_bytes(3, "little")
        return bytes(out)


def profile_from_model(model: ProfileFile, source: str) -> DeviceProfile:
    chars = []
    decoders: dict[str, Decoder] = {}
    for ch in model.characteristics:
        chars.append(CharacteristicSpec(ch.uuid, ch.mode, ch.role, ch.optional))
        if ch.fields:
            codec = VendorCharacteristic(ch, ch.kind or model.kind, model.id)
            decoders[ch.uuid] = codec.observations
        else:
            decoders[ch.uuid] = no_observations
    return DeviceProfile(
        id=model.id,
        display_name=model.display_name,
        kind=model.kind,
        service_uuids=tuple(model.service_uuids),
        characteristics=tuple(chars),
        name_patterns=tuple(model.name_patterns),
        manufacturer_ids=tuple(model.manufacturer_ids),
        needs_bonding=model.needs_bonding,
        sends_stored_records_on_connect=model.sends_stored_records_on_connect,
        uses_racp=model.uses_racp,
        set_clock=model.set_clock,
        source=source,
        decoders=decoders,
    )


def parse_profile(text: str, source: str = "<string>") -> DeviceProfile:
    """Parse one vendor profile (TOML text); ProfileFileError says what is wrong."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ProfileFileError(source, f"not valid TOML: {err}") from err
    try:
        model = ProfileFile.model_validate(doc)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors(include_url=False)[:5]
        )
        raise ProfileFileError(source, problems) from err
    return profile_from_model(model, source)


def vendor_codec(profile_text: str, char_uuid: str, source: str = "<string>") -> VendorCharacteristic:
    """The encoder/decoder of one characteristic of a profile (for simulators and tests)."""
    doc = tomllib.loads(profile_text)
    model = ProfileFile.model_validate(doc)
    uuid = normalize_uuid(char_uuid)
    for ch in model.characteristics:
        if ch.uuid == uuid:
            return VendorCharacteristic(ch, ch.kind or model.kind, model.id)
    raise ProfileFileError(source, f"no characteristic {uuid}")


def load_profile_file(path: Path) -> DeviceProfile:
    return parse_profile(path.read_text(encoding="utf-8"), source=path.name)


def load_profile_dir(directory: Path) -> list[DeviceProfile]:
    """Every ``*.toml`` profile in ``directory``, sorted by file name."""
    return [load_profile_file(p) for p in sorted(directory.glob("*.toml"))]


def packaged_profile_texts() -> dict[str, str]:
    """The vendor profile files shipped in device_profiles/profiles/, by file name."""
    root = resources.files("device_profiles") / "profiles"
    return {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in sorted(root.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".toml")
    }


def packaged_profiles() -> list[DeviceProfile]:
    return [parse_profile(text, source=name) for name, text in packaged_profile_texts().items()]
