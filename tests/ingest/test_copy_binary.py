"""The binary COPY encoder: hand-worked vectors, psycopg's own dumpers, and a real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import pq
from psycopg.adapt import Transformer
from psycopg.postgres import types as pg_types
from psycopg.types.json import Jsonb

from device_profiles.vocabulary import COMPONENTS, KINDS, Kind
from device_profiles.wire import KNOWN_FLAGS, DeviceInfo, Reading, Value, reading_id
from ingest.copy_binary import (
    NULL,
    OBS_COLUMNS,
    RAW_COLUMNS,
    SIGNATURE,
    TRAILER,
    encode_rows,
    float8_field,
    jsonb_field,
    text_array_field,
    text_field,
    timestamptz_field,
    uuid_field,
)
from ingest.pipeline import PreparedReading, clean_text, raw_bytes
from tests.ingest.helpers import make_reading

# Worked out by hand from PostgreSQL's documentation (COPY, "Binary Format") and the
# types' send functions; each field is a 4-byte big-endian length, then the value.
# Signature "PGCOPY\n\377\r\n\0", then a zero flags word and a zero header extension length.
HEADER = bytes.fromhex("5047434f50590aff0d0a000000000000000000")
# timestamptz: int64 microseconds since 2000-01-01 00:00 UTC.
TS_EPOCH_PLUS_1S = bytes.fromhex("0000000800000000000f4240")  # 1,000,000 µs
TS_EPOCH_MINUS_1US = bytes.fromhex("00000008ffffffffffffffff")  # -1 µs
# 2026-01-01: 26 years after 2000 of which 7 leap years (2000...2024) = 9,497 days
# = 820,540,800,000,000 µs = 0x0002EA470AE86000.
TS_2026 = bytes.fromhex("000000080002ea470ae86000")
# float8: IEEE 754 binary64. 36.8 = 1.15 x 2^5: exponent 1023 + 5 = 0x404, fraction
# 0.15 x 2^52 = 0x2666666666666 (rounded); -0.5: sign 1, exponent 1022 = 0x3FE.
F8_36_8 = bytes.fromhex("000000084042666666666666")
F8_MINUS_HALF = bytes.fromhex("00000008bfe0000000000000")
TEXT_CEL = bytes.fromhex("0000000343656c")  # "Cel"
TEXT_A_RING = bytes.fromhex("00000002c3a5")  # "å" is two bytes in UTF-8
# text[]: dimensions, has-nulls, element oid 25 (text); per dimension length and lower
# bound 1; then each element as length + bytes.
TEXT_ARRAY_EMPTY = bytes.fromhex("0000000c000000000000000000000019")
TEXT_ARRAY_A_BC = bytes.fromhex("0000001f00000001000000000000001900000002000000010000000161000000026263")
JSONB_A_1 = bytes.fromhex("00000008017b2261223a317d")  # version 1, then {"a":1}
UUID_VALUE = uuid.UUID("12345678-9abc-def0-1234-56789abcdef0")
UUID_FIELD = bytes.fromhex("00000010123456789abcdef0123456789abcdef0")

OBS_TYPES = {
    "reading_id": "uuid",
    "measured_at": "timestamptz",
    "patient_id": "uuid",
    "gateway_id": "text",
    "device_address": "text",
    "kind": "text",
    "status": "text",
    "reject_reason": "text",
    "flags": "text[]",
    "received_at": "timestamptz",
    "component": "text",
    "value": "float8",
    "unit": "text",
    "censored": "text",
    "original_value": "float8",
    "original_unit": "text",
}
RAW_TYPES = {
    "reading_id": "uuid",
    "measured_at": "timestamptz",
    "gateway_id": "text",
    "device": "jsonb",
    "raw": "bytea",
}


def test_field_vectors_worked_out_by_hand() -> None:
    assert SIGNATURE == HEADER
    assert TRAILER == b"\xff\xff"
    assert NULL == b"\xff\xff\xff\xff"
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    assert timestamptz_field(epoch + timedelta(seconds=1)) == TS_EPOCH_PLUS_1S
    assert timestamptz_field(epoch - timedelta(microseconds=1)) == TS_EPOCH_MINUS_1US
    assert timestamptz_field(datetime(2026, 1, 1, tzinfo=UTC)) == TS_2026
    # The same instant in another zone is the same timestamptz.
    assert timestamptz_field(datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))) == TS_2026
    assert float8_field(36.8) == F8_36_8
    assert float8_field(-0.5) == F8_MINUS_HALF
    assert float8_field(None) == NULL
    assert text_field("Cel") == TEXT_CEL
    assert text_field("å") == TEXT_A_RING
    assert text_field(None) == NULL
    assert text_array_field([]) == TEXT_ARRAY_EMPTY
    assert text_array_field(["a", "bc"]) == TEXT_ARRAY_A_BC
    assert jsonb_field('{"a":1}') == JSONB_A_1
    assert uuid_field(UUID_VALUE) == UUID_FIELD


def _oid(type_name: str) -> int:
    info = pg_types.get(type_name.removesuffix("[]"))
    assert info is not None
    return info.array_oid if type_name.endswith("[]") else info.oid


def _psycopg_fields(row: tuple[Any, ...], types: list[str]) -> bytes:
    """One tuple as psycopg's binary dumpers encode it (its COPY row formatter does the same)."""
    tx = Transformer()
    oids = [_oid(t) for t in types]
    tx.set_dumper_types(oids, pq.Format.BINARY)
    dumped = tx.dump_sequence(row, [pq.Format.BINARY] * len(row))
    out = bytearray(len(row).to_bytes(2, "big"))
    for field in dumped:
        if field is None:
            out += NULL
        else:
            out += len(field).to_bytes(4, "big") + bytes(field)
    return bytes(out)


def _already_json(text: str) -> str:
    return text


def _reference_rows(r: PreparedReading, patient: uuid.UUID) -> tuple[list[tuple[Any, ...]], tuple[Any, ...]]:
    """The rows as plain Python values, written the obvious way, for psycopg to encode."""
    rd = r.reading
    shared = (
        rd.reading_id,
        rd.measured_at,
        patient,
        r.gateway_id,
        rd.device.address,
        rd.kind.value,
        r.status,
        r.reject_reason,
        list(rd.flags),
        rd.received_at,
    )
    obs = [
        (
            *shared,
            name,
            v.value,
            v.unit.value,
            v.censored,
            v.original_value,
            clean_text(v.original_unit),
        )
        for name, v in rd.values.items()
    ]
    raw = (
        rd.reading_id,
        rd.measured_at,
        r.gateway_id,
        Jsonb(rd.device.model_dump_json(exclude_none=True), dumps=_already_json),
        raw_bytes(rd),
    )
    return obs, raw


def _expected(resolved: list[tuple[PreparedReading, uuid.UUID]]) -> tuple[bytes, bytes]:
    obs, raw = bytearray(SIGNATURE), bytearray()
    for r, patient in resolved:
        obs_rows, raw_row = _reference_rows(r, patient)
        for row in obs_rows:
            obs += _psycopg_fields(row, [OBS_TYPES[c] for c in OBS_COLUMNS])
        raw += _psycopg_fields(raw_row, [RAW_TYPES[c] for c in RAW_COLUMNS])
    return bytes(obs + TRAILER), bytes(raw)


def _encoded(resolved: list[tuple[PreparedReading, uuid.UUID]]) -> tuple[bytes, bytes]:
    raw = bytearray()
    obs = b"".join(encode_rows(resolved, raw))
    return obs, bytes(raw)


# Any text a device could send: no lone surrogates (JSON cannot carry them) and no NUL,
# which PostgreSQL text cannot hold (ingest turns
# such a message into a storage_error dead letter).
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)


def _prepared(reading: Reading, status: str = "valid", reason: str | None = None) -> PreparedReading:
    return PreparedReading(
        "gw-copy-1", "t", 0, reading, status, reason, None, datetime.now(UTC), reading.measured_at, reading.received_at
    )


def _value(name: str, draw: st.DrawFn) -> Value:
    censored = draw(st.sampled_from([None, None, "low", "high"]))
    value = None if censored else draw(st.floats(-1e9, 1e9, allow_nan=False))
    original = draw(st.none() | st.floats(-1e6, 1e6, allow_nan=False))
    return Value(
        value=value,
        unit=COMPONENTS[name].unit,
        censored=censored,
        original_value=original,
        original_unit=draw(st.none() | TEXT) if original is not None else None,
    )


@st.composite
def prepared_readings(draw: st.DrawFn) -> tuple[PreparedReading, uuid.UUID]:
    kind = draw(st.sampled_from(list(Kind)))
    spec = KINDS[kind]
    optional = draw(st.lists(st.sampled_from(spec.optional), unique=True)) if spec.optional else []
    names = [*spec.required, *optional] or [spec.components[0]]
    at = draw(st.datetimes(datetime(1990, 1, 1), datetime(2090, 1, 1), timezones=st.just(UTC)))
    reading = Reading(
        reading_id=reading_id(draw(TEXT), kind, draw(st.integers(0, 99))),
        device=DeviceInfo(
            address=draw(TEXT.filter(bool)),
            model=draw(st.sampled_from(["cuff", "Våg 1", "ø"])),
            serial=draw(st.none() | TEXT),
            battery_pct=draw(st.none() | st.integers(0, 100)),
        ),
        kind=kind,
        measured_at=at,
        received_at=at + timedelta(microseconds=draw(st.integers(0, 10**9))),
        values={name: _value(name, draw) for name in names},
        flags=draw(st.lists(st.sampled_from(sorted(KNOWN_FLAGS)), max_size=3)),
        raw=draw(st.none() | st.sampled_from(["AAECAw==", "not base64!"])),
    )
    status, reason = draw(st.sampled_from([("valid", None), ("flagged", "spo2 low"), ("rejected", "weight ±6 kg")]))
    return _prepared(reading, status, reason), draw(st.uuids())


@settings(max_examples=200, deadline=None)
@given(st.lists(prepared_readings(), min_size=0, max_size=6))
def test_encoder_writes_exactly_what_psycopg_writes(resolved: list[tuple[PreparedReading, uuid.UUID]]) -> None:
    assert _encoded(resolved) == _expected(resolved)


def test_large_batches_come_in_several_chunks_that_join_to_the_whole() -> None:
    patient = uuid.uuid4()
    resolved = [(_prepared(make_reading(Kind.BLOOD_PRESSURE, seq=i)), patient) for i in range(3000)]
    raw = bytearray()
    chunks = list(encode_rows(resolved, raw))
    assert len(chunks) > 1
    assert chunks[0].startswith(SIGNATURE)
    assert chunks[-1].endswith(TRAILER)
    assert (b"".join(chunks), bytes(raw)) == _expected(resolved)


def test_postgresql_reads_the_encoded_rows_as_the_values_they_came_from(
    db: psycopg.Connection[Any], database_url: str
) -> None:
    patient = uuid.uuid4()
    censored = make_reading(Kind.GLUCOSE_CGM, seq=2)
    censored = censored.model_copy(
        update={
            "values": {
                "glucose_interstitial": Value(value=None, unit=COMPONENTS["glucose_interstitial"].unit, censored="low")
            }
        }
    )
    readings = [
        _prepared(make_reading(Kind.BLOOD_PRESSURE, seq=1, flags=["irregular_pulse", "body_movement"])),
        _prepared(censored, "rejected", "ingen siffra – censurerad"),
        _prepared(make_reading(Kind.WEIGHT, seq=3, battery_pct=40)),
    ]
    resolved = [(r, patient) for r in readings]
    raw = bytearray(SIGNATURE)
    obs = list(encode_rows(resolved, raw))
    raw += TRAILER
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE o (LIKE observation INCLUDING DEFAULTS)")
        cur.execute("CREATE TEMP TABLE r (LIKE reading_raw)")
        with cur.copy(f"COPY o ({', '.join(OBS_COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
            for chunk in obs:
                copy.write(chunk)
        with cur.copy(f"COPY r ({', '.join(RAW_COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(bytes(raw))
        got = cur.execute(f"SELECT {', '.join(OBS_COLUMNS)} FROM o ORDER BY measured_at, component").fetchall()
        got_raw = cur.execute(f"SELECT {', '.join(RAW_COLUMNS)} FROM r ORDER BY measured_at").fetchall()
    want = sorted((row for r, p in resolved for row in _reference_rows(r, p)[0]), key=lambda row: (row[1], row[10]))
    assert got == want
    assert [(row[0], row[1], row[2], row[3], row[4]) for row in got_raw] == [
        (
            r.reading.reading_id,
            r.reading.measured_at,
            r.gateway_id,
            r.reading.device.model_dump(exclude_none=True),
            raw_bytes(r.reading),
        )
        for r in readings
    ]
