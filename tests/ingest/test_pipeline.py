"""Parsing messages into rows and dead letters (pure, no I/O)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from device_profiles.vocabulary import Kind
from device_profiles.wire import MAX_MESSAGE_BYTES, parse_envelope, parse_reading, readings_topic, status_topic
from ingest.pipeline import DEAD_LETTER_KEEP_BYTES, Incoming, prepare
from tests.ingest.helpers import batch_bytes, make_reading

GW = "gw-prepare-1"


def _msg(payload: bytes, topic: str = readings_topic(GW)) -> Incoming:
    return Incoming(topic, payload, 1, 1, 0, datetime.now(UTC))


def test_good_batch_gives_readings_with_status() -> None:
    readings = [
        make_reading(Kind.SPO2, seq=1),
        make_reading(Kind.SPO2, seq=2, values={"spo2": 65}),
        make_reading(Kind.TEMPERATURE, seq=3, values={"temperature": 47}),
    ]
    batch = prepare([_msg(batch_bytes(GW, readings))])
    assert batch.dead_letters == []
    assert [(r.status, r.reading_index) for r in batch.readings] == [("valid", 0), ("flagged", 1), ("rejected", 2)]
    assert "temperature 47 outside" in (batch.readings[2].reject_reason or "")


def test_topic_gateway_is_authoritative() -> None:
    batch = prepare([_msg(batch_bytes("gw-other-1", [make_reading(Kind.WEIGHT)]))])
    assert [d.reason for d in batch.dead_letters] == ["gateway_id_mismatch"]
    assert batch.readings == []


def test_bad_topics_and_statuses_are_dead_letters() -> None:
    good = batch_bytes(GW, [make_reading(Kind.WEIGHT)])
    batch = prepare(
        [
            _msg(good, topic="egenmon/v1/gw/Bad Id/readings"),
            _msg(b"{}", topic=status_topic(GW)),
            _msg(b"offline", topic=status_topic(GW)),
        ]
    )
    assert sorted(d.reason for d in batch.dead_letters) == ["bad_status", "bad_topic"]
    assert [(s.gateway_id, s.online) for s in batch.statuses] == [(GW, False)]


def test_nul_characters_in_details_are_escaped() -> None:
    doc = json.loads(batch_bytes(GW, [make_reading(Kind.WEIGHT)]))
    doc["readings"][0]["values"]["weight"]["unit"] = "k\x00g"
    batch = prepare([_msg(json.dumps(doc).encode())])
    assert [d.reason for d in batch.dead_letters] == ["nul_in_text"]
    assert "\x00" not in (batch.dead_letters[0].detail or "")


def test_a_reading_with_nul_in_any_text_is_a_dead_letter_up_front_and_its_neighbours_stay() -> None:
    """PostgreSQL cannot store NUL in text or jsonb: found here, it never fails a batch's COPY."""
    readings = [make_reading(Kind.TEMPERATURE, seq=i) for i in range(4)]
    doc = json.loads(batch_bytes(GW, readings))
    doc["readings"][1]["device"]["model"] = "Termo\x00meter"  # accepted by the wire schema
    doc["readings"][2]["values"]["temperature"]["original_unit"] = "\x00C"
    batch = prepare([_msg(json.dumps(doc).encode())])
    assert [(d.reason, d.reading_index) for d in batch.dead_letters] == [("nul_in_text", 1), ("nul_in_text", 2)]
    assert [r.reading_index for r in batch.readings] == [0, 3]
    status = {
        "gateway_id": GW,
        "sent_at": "2026-11-25T10:00:00Z",
        "version": "1.0\x00",
        "uptime_s": 5,
        "outbox_depth": 0,
        "outbox_capacity": 10,
    }
    batch = prepare([_msg(json.dumps(status).encode(), topic=status_topic(GW))])
    assert [d.reason for d in batch.dead_letters] == ["nul_in_text"]
    assert batch.statuses == []


def test_a_message_above_the_wire_limit_keeps_its_start_size_and_hash() -> None:
    big = b'{"schema": 1, "readings": [' + b" " * MAX_MESSAGE_BYTES + b"]}"
    for topic in (readings_topic(GW), status_topic(GW)):
        batch = prepare([_msg(big, topic=topic)])
        [dead] = batch.dead_letters
        assert (dead.reason, dead.gateway_id) == ("too_large", GW)
        assert dead.payload == big[:DEAD_LETTER_KEEP_BYTES]
        assert (dead.payload_bytes, dead.payload_sha256) == (len(big), hashlib.sha256(big).digest())
        assert f"{len(big)} bytes" in (dead.detail or "")
    at_limit = b"{" + b" " * (MAX_MESSAGE_BYTES - 2) + b"}"
    [dead] = prepare([_msg(at_limit)]).dead_letters
    assert dead.reason == "unsupported_schema_version"
    assert dead.payload == at_limit  # kept whole below the limit


def test_readings_dated_outside_the_plausible_window_are_dead_letters_and_the_rest_are_stored() -> None:
    received = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    readings = [make_reading(Kind.SPO2, seq=i, measured_at=received - timedelta(hours=1)) for i in range(6)]
    doc = json.loads(batch_bytes(GW, readings))
    doc["readings"][1]["measured_at"] = "9999-12-31T23:59:59-14:00"  # year 10000 in UTC
    doc["readings"][2]["measured_at"] = "2100-01-01T00:00:00Z"
    doc["readings"][3]["measured_at"] = "1999-12-31T23:59:59Z"
    doc["readings"][4]["measured_at"] = "2026-11-25T10:09:00Z"  # 9 minutes ahead: a fast clock, kept
    doc["readings"][5]["received_at"] = "9999-12-31T23:59:59-14:00"
    batch = prepare([Incoming(readings_topic(GW), json.dumps(doc).encode(), 1, 1, 0, received)])
    assert [(d.reason, d.reading_index) for d in batch.dead_letters] == [
        ("measured_at_out_of_range", 1),
        ("measured_at_out_of_range", 2),
        ("measured_at_out_of_range", 3),
        ("received_at_out_of_range", 5),
    ]
    assert "9999-12-31T23:59:59-14:00" in (batch.dead_letters[0].detail or "")
    assert [r.reading_index for r in batch.readings] == [0, 4]


def test_nan_and_infinities_are_refused_in_readings_and_statuses() -> None:
    template = batch_bytes(GW, [make_reading(Kind.TEMPERATURE)]).decode()
    for number in ("1e999", "-1e999", "NaN", "Infinity"):
        payload = template.replace('"value":36.9', f'"value":{number}').encode()
        assert payload != template.encode()
        batch = prepare([_msg(payload)])
        assert batch.readings == [], number
        assert [d.reason for d in batch.dead_letters] in (["bad_reading"], ["bad_json"]), number
    status = json.dumps(
        {"gateway_id": GW, "sent_at": "2026-11-25T10:00:00Z", "version": "1", "uptime_s": 1, "outbox_depth": 0}
        | {"outbox_capacity": 10}
    ).replace('"uptime_s": 1', '"uptime_s": 1e999')
    assert "1e999" in status
    batch = prepare([_msg(status.encode(), topic=status_topic(GW))])
    assert [d.reason for d in batch.dead_letters] == ["bad_status"]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise_and_are_kept(payload: bytes) -> None:
    batch = prepare([_msg(payload)])
    assert len(batch.dead_letters) == 1
    assert batch.dead_letters[0].payload == payload


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
        max_leaves=20,
    )
)
def test_arbitrary_json_readings_never_raise(doc: object) -> None:
    envelope = {"schema": 1, "gateway_id": GW, "seq": 1, "sent_at": "2026-11-25T10:00:00Z", "readings": [doc]}
    batch = prepare([_msg(json.dumps(envelope).encode())])
    assert len(batch.readings) + len(batch.dead_letters) == 1


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(list(Kind)),
    st.dictionaries(st.sampled_from(["schema", "gateway_id", "seq", "sent_at", "readings", "schema_"]), st.integers()),
)
def test_one_pass_and_two_step_parsing_agree(kind: Kind, overrides: dict[str, int]) -> None:
    """Whatever the one-pass parse accepts, the two-step parse accepts the same way."""
    doc = json.loads(batch_bytes(GW, [make_reading(kind)]))
    doc.update(overrides)
    payload = json.dumps(doc).encode()
    batch = prepare([_msg(payload)])
    try:
        env = parse_envelope(payload, GW)
        two_step = [parse_reading(d) for d in env.readings]
    except ValueError:
        two_step = None
    if two_step is not None:
        assert [r.reading for r in batch.readings] == two_step
    else:
        assert batch.readings == []
        assert len(batch.dead_letters) == 1
