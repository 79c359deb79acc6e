"""Parsing messages into rows and dead letters (pure, no I/O)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from device_profiles.vocabulary import Kind
from device_profiles.wire import parse_envelope, parse_reading, readings_topic, status_topic
from ingest.prepare import Incoming, prepare
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
    doc["readings"][0]["values"]["we\x00ight"] = doc["readings"][0]["values"].pop("weight")
    batch = prepare([_msg(json.dumps(doc).encode())])
    assert [d.reason for d in batch.dead_letters] == ["bad_reading"]
    assert "\x00" not in (batch.dead_letters[0].detail or "")


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
