"""Properties over the whole valid domain: decode(encode(x)) == x, and any bytes give a
valid measurement or the one typed DecodeError."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_profiles.codecs.racp import RacpRequest, parse_racp_response
from device_profiles.errors import DecodeError
from device_profiles.ieee11073 import Special
from device_profiles.observation import DecodeContext

from .conftest import RECEIVED_AT
from .strategies import CODEC_STRATEGIES
from .test_fuzz import check_decode_error

CODECS = list(CODEC_STRATEGIES)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.__name__)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_decode_encode_round_trip(codec: Any, data: st.DataObject) -> None:
    value = data.draw(CODEC_STRATEGIES[codec])
    encoded = bytes(value)
    assert codec.from_bytes(encoded) == value


def _check_observations(decoded: Any, raw: bytes) -> None:
    observations = getattr(decoded, "observations", None)
    if observations is None:
        return
    for obs in observations(raw, DecodeContext(RECEIVED_AT)):
        for m in obs.values.values():
            if m.value is not None:
                assert math.isfinite(m.value)
            else:
                assert m.censored is not None or isinstance(m.special, Special)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.__name__)
@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=40))
def test_arbitrary_bytes_decode_or_raise_decode_error(codec: Any, raw: bytes) -> None:
    try:
        decoded = codec.from_bytes(raw)
    except DecodeError as err:
        check_decode_error(err, raw)
        return
    # Whatever decodes re-encodes to something that decodes to the same measurement.
    assert codec.from_bytes(bytes(decoded)) == decoded
    _check_observations(decoded, raw)


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=8))
def test_arbitrary_racp_bytes(raw: bytes) -> None:
    for parse in (parse_racp_response, RacpRequest.from_bytes):
        try:
            parsed = parse(raw)
        except DecodeError as err:
            check_decode_error(err, raw)
        else:
            assert bytes(parsed) == raw


@given(st.integers(0, 0xFFFF))
def test_racp_sequence_requests_round_trip(sequence: int) -> None:
    for request in (RacpRequest.report_from_sequence(sequence), RacpRequest.number_of_records_from_sequence(sequence)):
        parsed = RacpRequest.from_bytes(bytes(request))
        assert parsed == request
        assert parsed.min_sequence == sequence
