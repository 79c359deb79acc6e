"""Record Access Control Point (0x2A52): fetching stored records (Glucose, CGM).

Value layout (GSS "Record Access Control Point"; Glucose Service 1.0 §3.9):

    Op Code   uint8   1 report stored records, 2 delete stored records, 3 abort,
                      4 report number of stored records, 5 number of stored records
                      response, 6 response code
    Operator  uint8   0 null, 1 all records, 2 <=, 3 >=, 4 within range (inclusive),
                      5 first record, 6 last record
    Operand   0-n     for operators 2-4: filter type uint8 (1 = sequence number,
                      2 = user facing time) then the filter value(s)

The gateway writes requests; the device answers by indication with either
``05 00 <count uint16>`` or ``06 00 <request op code> <response code>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from device_profiles.errors import DecodeError
from device_profiles.gatt import Uuid
from device_profiles.observation import DecodeContext, Observation


class RacpOpCode(IntEnum):
    REPORT_STORED_RECORDS = 1
    DELETE_STORED_RECORDS = 2
    ABORT_OPERATION = 3
    REPORT_NUMBER_OF_STORED_RECORDS = 4
    NUMBER_OF_STORED_RECORDS_RESPONSE = 5
    RESPONSE_CODE = 6


class RacpOperator(IntEnum):
    NULL = 0
    ALL_RECORDS = 1
    LESS_THAN_OR_EQUAL = 2
    GREATER_THAN_OR_EQUAL = 3
    WITHIN_RANGE = 4
    FIRST_RECORD = 5
    LAST_RECORD = 6


class RacpFilter(IntEnum):
    SEQUENCE_NUMBER = 1
    USER_FACING_TIME = 2


class RacpResponseCode(IntEnum):
    SUCCESS = 1
    OP_CODE_NOT_SUPPORTED = 2
    INVALID_OPERATOR = 3
    OPERATOR_NOT_SUPPORTED = 4
    INVALID_OPERAND = 5
    NO_RECORDS_FOUND = 6
    ABORT_UNSUCCESSFUL = 7
    PROCEDURE_NOT_COMPLETED = 8
    OPERAND_NOT_SUPPORTED = 9


_NAME = "Record Access Control Point"


def _sequence_operand(sequence: int) -> bytes:
    """Operand "sequence number >= N": filter type 0x01, then the uint16 sequence number."""
    return bytes([RacpFilter.SEQUENCE_NUMBER]) + sequence.to_bytes(2, "little")


@dataclass(frozen=True, slots=True)
class RacpRequest:
    """A request the gateway writes (or, in a simulator, receives)."""

    op_code: RacpOpCode
    operator: RacpOperator
    operand: bytes = b""

    characteristic: ClassVar[str] = Uuid.RECORD_ACCESS_CONTROL_POINT

    @classmethod
    def report_all(cls) -> RacpRequest:
        return cls(RacpOpCode.REPORT_STORED_RECORDS, RacpOperator.ALL_RECORDS)

    @classmethod
    def report_from_sequence(cls, sequence: int) -> RacpRequest:
        """Records with sequence number >= ``sequence`` (the gateway asks for last + 1)."""
        return cls(
            RacpOpCode.REPORT_STORED_RECORDS,
            RacpOperator.GREATER_THAN_OR_EQUAL,
            _sequence_operand(sequence),
        )

    @classmethod
    def number_of_records(cls) -> RacpRequest:
        return cls(RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS, RacpOperator.ALL_RECORDS)

    @classmethod
    def number_of_records_from_sequence(cls, sequence: int) -> RacpRequest:
        return cls(
            RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS,
            RacpOperator.GREATER_THAN_OR_EQUAL,
            _sequence_operand(sequence),
        )

    @classmethod
    def abort(cls) -> RacpRequest:
        return cls(RacpOpCode.ABORT_OPERATION, RacpOperator.NULL)

    @classmethod
    def from_bytes(cls, data: bytes) -> RacpRequest:
        """Parse a request (what a simulated device receives)."""
        if len(data) < 2:
            raise DecodeError("truncated: RACP needs op code and operator", data, characteristic=_NAME)
        try:
            op, operator = RacpOpCode(data[0]), RacpOperator(data[1])
        except ValueError as err:
            raise DecodeError(
                f"reserved op code or operator 0x{data[0]:02x} 0x{data[1]:02x}", data, characteristic=_NAME
            ) from err
        if op in (RacpOpCode.NUMBER_OF_STORED_RECORDS_RESPONSE, RacpOpCode.RESPONSE_CODE):
            raise DecodeError(f"{op.name} is a response, not a request", data, characteristic=_NAME)
        return cls(op, operator, bytes(data[2:]))

    @property
    def min_sequence(self) -> int | None:
        """For a ">= sequence number" request, the sequence number; else None."""
        if (
            self.operator is RacpOperator.GREATER_THAN_OR_EQUAL
            and len(self.operand) == 3
            and self.operand[0] == RacpFilter.SEQUENCE_NUMBER
        ):
            return self.operand[1] | self.operand[2] << 8
        return None

    def __bytes__(self) -> bytes:
        return bytes([self.op_code, self.operator]) + self.operand


@dataclass(frozen=True, slots=True)
class RacpNumberOfRecords:
    count: int

    def __bytes__(self) -> bytes:
        return bytes([RacpOpCode.NUMBER_OF_STORED_RECORDS_RESPONSE, RacpOperator.NULL]) + self.count.to_bytes(
            2, "little"
        )


@dataclass(frozen=True, slots=True)
class RacpResponse:
    request_op_code: RacpOpCode
    code: RacpResponseCode

    @property
    def ok(self) -> bool:
        # "No records found" is a normal end of a ">= last + 1" fetch, not a failure.
        return self.code in (RacpResponseCode.SUCCESS, RacpResponseCode.NO_RECORDS_FOUND)

    def __bytes__(self) -> bytes:
        return bytes([RacpOpCode.RESPONSE_CODE, RacpOperator.NULL, self.request_op_code, self.code])


RacpIndication = RacpNumberOfRecords | RacpResponse


def parse_racp_response(data: bytes) -> RacpIndication:
    """Parse what the device indicates on the RACP; DecodeError for anything else."""
    if len(data) < 2:
        raise DecodeError("truncated: RACP needs op code and operator", data, characteristic=_NAME)
    op, operator = data[0], data[1]
    if operator != RacpOperator.NULL:
        raise DecodeError(f"RACP response with operator {operator}, expected null", data, characteristic=_NAME)
    if op == RacpOpCode.NUMBER_OF_STORED_RECORDS_RESPONSE:
        if len(data) != 4:
            raise DecodeError("number of stored records response is 4 bytes", data, characteristic=_NAME)
        return RacpNumberOfRecords(data[2] | data[3] << 8)
    if op == RacpOpCode.RESPONSE_CODE:
        if len(data) != 4:
            raise DecodeError("response code is 4 bytes", data, characteristic=_NAME)
        try:
            return RacpResponse(RacpOpCode(data[2]), RacpResponseCode(data[3]))
        except ValueError as err:
            raise DecodeError(
                f"reserved request op code or response code {data[2]}/{data[3]}", data, characteristic=_NAME
            ) from err
    raise DecodeError(f"RACP op code {op} is not a response", data, characteristic=_NAME)


class RacpIndicationCodec:
    """Adapter so a profile can validate RACP indications like any characteristic."""

    @classmethod
    def from_bytes(cls, data: bytes) -> RacpIndicationCodec:
        parse_racp_response(data)
        return cls()

    def observations(self, raw: bytes, ctx: DecodeContext) -> list[Observation]:
        return []


def next_records_request(last_sequence: int | None) -> RacpRequest:
    """What the gateway asks after a (re)connect: every record when it has none yet,
    otherwise the records after the last one it received (DESIGN.md: "fetch only records
    newer than the last one received"). After sequence 0xFFFF the numbering wraps and all
    records are asked for again; their deterministic reading ids make that harmless."""
    if last_sequence is None or last_sequence >= 0xFFFF:
        return RacpRequest.report_all()
    return RacpRequest.report_from_sequence(last_sequence + 1)
