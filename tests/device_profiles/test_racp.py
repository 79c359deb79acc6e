"""Record Access Control Point 0x2A52: requests the gateway writes, responses it parses."""

from __future__ import annotations

import pytest

from device_profiles.codecs.racp import (
    RacpNumberOfRecords,
    RacpOpCode,
    RacpOperator,
    RacpRequest,
    RacpResponse,
    RacpResponseCode,
    next_records_request,
    parse_racp_response,
)
from device_profiles.errors import DecodeError


@pytest.mark.parametrize(
    ("request_", "wire"),
    [
        (RacpRequest.report_all(), "0101"),  # op 1 report stored records, operator 1 all
        # op 1, operator 3 (>=), filter type 1 (sequence number), 0x0018 = 24
        (RacpRequest.report_from_sequence(24), "0103011800"),
        (RacpRequest.number_of_records(), "0401"),  # op 4 report number, operator all
        (RacpRequest.number_of_records_from_sequence(0x1234), "0403013412"),
        (RacpRequest.abort(), "0300"),  # op 3 abort, operator null
    ],
)
def test_requests(request_: RacpRequest, wire: str) -> None:
    assert bytes(request_).hex() == wire
    assert RacpRequest.from_bytes(bytes.fromhex(wire)) == request_


def test_min_sequence_of_a_filter_request() -> None:
    assert RacpRequest.report_from_sequence(24).min_sequence == 24
    assert RacpRequest.report_all().min_sequence is None


@pytest.mark.parametrize(
    ("wire", "parsed"),
    [
        ("05000c00", RacpNumberOfRecords(12)),  # op 5, operator null, count 12
        ("06000101", RacpResponse(RacpOpCode.REPORT_STORED_RECORDS, RacpResponseCode.SUCCESS)),
        ("06000106", RacpResponse(RacpOpCode.REPORT_STORED_RECORDS, RacpResponseCode.NO_RECORDS_FOUND)),
        ("06000402", RacpResponse(RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS, RacpResponseCode.OP_CODE_NOT_SUPPORTED)),
        ("06000305", RacpResponse(RacpOpCode.ABORT_OPERATION, RacpResponseCode.INVALID_OPERAND)),
        ("06000109", RacpResponse(RacpOpCode.REPORT_STORED_RECORDS, RacpResponseCode.OPERAND_NOT_SUPPORTED)),
    ],
)
def test_responses(wire: str, parsed: object) -> None:
    assert parse_racp_response(bytes.fromhex(wire)) == parsed
    assert bytes(parsed).hex() == wire  # type: ignore[call-overload]


def test_response_ok() -> None:
    assert RacpResponse(RacpOpCode.REPORT_STORED_RECORDS, RacpResponseCode.NO_RECORDS_FOUND).ok
    assert not RacpResponse(RacpOpCode.REPORT_STORED_RECORDS, RacpResponseCode.PROCEDURE_NOT_COMPLETED).ok


@pytest.mark.parametrize(
    "wire",
    [
        "",
        "05",
        "05000c",  # count truncated
        "0601",  # operator must be null
        "0600010a",  # response code 0x0A reserved
        "06000701",  # request op code 7 reserved
        "0101",  # a request, not a response
        "05000c0000",  # trailing byte
    ],
)
def test_malformed_responses(wire: str) -> None:
    with pytest.raises(DecodeError):
        parse_racp_response(bytes.fromhex(wire))


@pytest.mark.parametrize("wire", ["", "01", "0901", "0107", "05000c00"])
def test_malformed_requests(wire: str) -> None:
    with pytest.raises(DecodeError):
        RacpRequest.from_bytes(bytes.fromhex(wire))


def test_operator_enum_values() -> None:
    assert [int(o) for o in RacpOperator] == [0, 1, 2, 3, 4, 5, 6]


def test_next_records_request() -> None:
    assert bytes(next_records_request(None)).hex() == "0101"  # first contact: everything
    assert bytes(next_records_request(23)).hex() == "0103011800"  # >= 24
    assert bytes(next_records_request(0xFFFF)).hex() == "0101"  # wrapped numbering
