"""The pure pipeline: messages to readings, routes, verdicts and dead letters (no I/O).

Everything here runs without MQTT or PostgreSQL: the pipeline's functions take and return
plain data.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_profiles import wire
from device_profiles.vocabulary import Kind
from device_profiles.wire import MAX_MESSAGE_BYTES, parse_envelope, parse_reading, readings_topic, status_topic
from ingest import pipeline
from ingest.pipeline import (
    DEAD_LETTER_KEEP_BYTES,
    GatewayRoutes,
    Incoming,
    PreparedBatch,
    apply_weight_verdicts,
    assigned_patient,
    device_rows,
    prepare,
    route,
    weight_candidates,
)
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


def test_assignment_bounds_follow_the_range_they_came_from() -> None:
    patient = uuid.uuid4()
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    t1 = datetime(2026, 11, 2, tzinfo=UTC)
    half_open = [(patient, t0, t1, True, False)]  # [t0, t1), as assignments are stored
    assert assigned_patient(half_open, t0) == patient
    assert assigned_patient(half_open, t1) is None
    assert assigned_patient(half_open, t0 - timedelta(microseconds=1)) is None
    assert assigned_patient([(patient, t0, t1, False, True)], t0) is None
    assert assigned_patient([(patient, t0, t1, False, True)], t1) == patient
    assert assigned_patient([(patient, t0, None, True, False)], t1 + timedelta(days=999)) == patient
    assert assigned_patient([(patient, None, t1, False, False)], t0 - timedelta(days=999)) == patient
    other = uuid.uuid4()
    two = [(other, None, t0, False, False), (patient, t0, None, True, False)]  # a gateway handed on at t0
    assert (assigned_patient(two, t0 - timedelta(seconds=1)), assigned_patient(two, t0)) == (other, patient)


PATIENT = uuid.UUID(int=1)
ROUTES = GatewayRoutes({GW}, {GW: [(PATIENT, None, None, False, False)]})


def test_a_readings_message_is_decoded_by_wire_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """One call into the wire schema per message, good or bad; nothing downstream parses again."""
    calls: list[str] = []
    real = wire.decode_readings

    def counting(topic: str, payload: bytes, accept: Any) -> wire.ReadingsMessage[Any]:
        calls.append(topic)
        return real(topic, payload, accept)

    monkeypatch.setattr(pipeline, "decode_readings", counting)
    good = batch_bytes(GW, [make_reading(Kind.SPO2, seq=i) for i in range(3)])
    doc = json.loads(good)
    doc["readings"][1]["kind"] = "nope"
    batch = prepare([_msg(good), _msg(json.dumps(doc).encode())])
    assert calls == [readings_topic(GW)] * 2
    assert [r.reading_index for r in batch.readings] == [0, 1, 2, 0, 2]
    assert [(d.reason, d.reading_index) for d in batch.dead_letters] == [("bad_reading", 1)]


def test_routing_gives_the_patient_at_measured_at_and_dead_letters_for_the_rest() -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    other = uuid.UUID(int=2)
    routes = GatewayRoutes()
    routes.add(GW, (other, None, t0, False, False))
    routes.add(GW, (PATIENT, t0, None, True, False))
    routes.add("gw-prepare-2", None)  # registered, never assigned
    readings = [
        make_reading(Kind.WEIGHT, seq=1, measured_at=t0 - timedelta(hours=1)),
        make_reading(Kind.WEIGHT, seq=2, measured_at=t0),
        make_reading(Kind.WEIGHT, seq=2, measured_at=t0),  # twice in the batch: kept once
    ]
    msgs = [
        _msg(batch_bytes(GW, readings)),
        _msg(batch_bytes("gw-prepare-2", [make_reading(Kind.SPO2)]), topic=readings_topic("gw-prepare-2")),
        _msg(batch_bytes("gw-unknown-9", [make_reading(Kind.SPO2)]), topic=readings_topic("gw-unknown-9")),
    ]
    routed = route(prepare(msgs).readings, routes)
    assert [(r.reading_index, patient) for r, patient in routed.resolved] == [(0, other), (1, PATIENT)]
    assert routed.duplicates == 1
    assert [(d.reason, d.gateway_id) for d in routed.dead_letters] == [
        ("unassigned_gateway", "gw-prepare-2"),
        ("unknown_gateway", "gw-unknown-9"),
    ]
    # A reading validated in one pass is dumped from its model for its dead letter.
    assert json.loads(routed.dead_letters[0].payload)["kind"] == "spo2"


def test_weight_verdicts_reject_and_flag_only_the_weights_named() -> None:
    readings = [
        make_reading(Kind.WEIGHT, seq=1, values={"weight": 90.0}),
        make_reading(Kind.SPO2, seq=2),
        make_reading(Kind.WEIGHT, seq=3, values={"weight": 80.0}),
        make_reading(Kind.WEIGHT, seq=4, values={"weight": 400.0}),  # implausible: already rejected
    ]
    routed = route(prepare([_msg(batch_bytes(GW, readings))]).readings, ROUTES)
    candidates = weight_candidates(routed.resolved)
    assert [(c.position, c.kg) for c in candidates] == [(0, 90.0), (2, 80.0)]
    verdicts = {
        readings[0].reading_id: (9.5, None, None),
        readings[2].reading_id: (None, -14.0, 94.0),
    }
    out = apply_weight_verdicts(routed.resolved, candidates, verdicts, max_change_kg=5.0, median_days=14)
    assert [r.status for r, _ in out] == ["rejected", "valid", "rejected", "rejected"]
    assert out[0][0].reject_reason == (
        "probably_someone_else: weight changed +9.5 kg from the previous day (likely another person)"
    )
    assert out[2][0].reject_reason == (
        "probably_someone_else: weight -14.0 kg from the median 94.0 kg of the last 14 days (likely another person)"
    )
    assert [sorted(r.reading.flags) for r, _ in out[:3]] == [["probably_someone_else"], [], ["probably_someone_else"]]
    assert routed.resolved[0][0].status == "valid"  # the input is left as it was
    assert apply_weight_verdicts(routed.resolved, candidates, {}, max_change_kg=5.0, median_days=14) is routed.resolved


def test_device_rows_keep_the_latest_details_and_the_span_seen() -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    readings = [
        make_reading(Kind.WEIGHT, seq=2, measured_at=t0 + timedelta(hours=2), battery_pct=40),
        make_reading(Kind.WEIGHT, seq=1, measured_at=t0, battery_pct=50),
        make_reading(Kind.SPO2, serial="SN-other", seq=1, measured_at=t0),
    ]
    rows = device_rows(route(prepare([_msg(batch_bytes(GW, readings))]).readings, ROUTES).resolved)
    weight = rows[(GW, readings[0].device.address)]
    assert weight[6] == 40  # the battery of the latest reading
    assert (weight[7], weight[8]) == (readings[1].received_at, readings[0].received_at)
    assert len(rows) == 2


# A malformed message of each kind the pipeline knows, each to become one dead letter.
MALFORMED: dict[str, tuple[str, bytes]] = {
    "bad_json": (readings_topic(GW), b"{not json"),
    "bad_schema": (readings_topic(GW), b"[1, 2]"),
    "unsupported_schema_version": (readings_topic(GW), b'{"schema": 2}'),
    "bad_topic": ("egenmon/v1/gw/NOT OK/readings", b"{}"),
    "gateway_id_mismatch": (readings_topic(GW), b""),  # filled in below
    "too_large": (readings_topic(GW), b" " * (MAX_MESSAGE_BYTES + 1)),
}
MALFORMED["gateway_id_mismatch"] = (readings_topic(GW), batch_bytes("gw-other-1", [make_reading(Kind.SPO2)]))


def _bad_reading(doc: dict[str, object], how: str) -> str:
    """Spoil one reading of a parsed message in place; the dead-letter reason it should get."""
    if how == "nul":
        doc["device"]["model"] = "a\x00b"  # type: ignore[index]
        return "nul_in_text"
    if how == "future":
        doc["measured_at"] = "2999-01-01T00:00:00Z"
        return "measured_at_out_of_range"
    doc["kind"] = "no_such_kind"
    return "bad_reading"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("good"), st.lists(st.sampled_from(list(Kind)), min_size=1, max_size=4)),
            st.tuples(st.just("malformed"), st.sampled_from(sorted(MALFORMED))),
            st.tuples(
                st.just("one_bad_reading"),
                st.lists(st.sampled_from(list(Kind)), min_size=2, max_size=4),
                st.sampled_from(["nul", "future", "schema"]),
            ),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_every_valid_reading_yields_rows_and_every_malformed_one_exactly_one_dead_letter(
    mix: list[tuple[object, ...]],
) -> None:
    """Any mix of good and malformed messages in one batch: nothing is lost, nothing doubled."""
    msgs: list[Incoming] = []
    good_ids: list[uuid.UUID] = []
    expected_dead: list[tuple[str, int | None]] = []
    received = datetime.now(UTC)
    for m, item in enumerate(mix):
        kind = item[0]
        if kind == "malformed":
            topic, payload = MALFORMED[str(item[1])]
            msgs.append(Incoming(topic, payload, m, 1, 0, received))
            expected_dead.append((str(item[1]), None))
            continue
        kinds = item[1]
        assert isinstance(kinds, list)
        readings = [make_reading(k, serial=f"SN-{m}", seq=i) for i, k in enumerate(kinds)]
        doc = json.loads(batch_bytes(GW, readings, seq=m))
        spoiled = None
        if kind == "one_bad_reading":
            spoiled = len(readings) // 2
            expected_dead.append((_bad_reading(doc["readings"][spoiled], str(item[2])), spoiled))
        good_ids += [r.reading_id for i, r in enumerate(readings) if i != spoiled]
        msgs.append(Incoming(readings_topic(GW), json.dumps(doc).encode(), m, 1, 0, received))
    batch = prepare(msgs)
    routed = route(batch.readings, ROUTES)
    assert [r.reading.reading_id for r, _ in routed.resolved] == good_ids
    assert all(len(r.reading.values) >= 1 for r, _ in routed.resolved)  # each gives at least one row
    assert routed.dead_letters == []
    assert routed.duplicates == 0
    assert sorted((d.reason, d.reading_index) for d in batch.dead_letters) == sorted(expected_dead)
    assert all(d.reason and d.payload is not None for d in batch.dead_letters)


def test_an_empty_batch_is_empty() -> None:
    assert prepare([]) == PreparedBatch()
