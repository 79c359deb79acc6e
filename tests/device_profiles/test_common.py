"""Current Time 0x2A2B, Date Time 0x2A08, Battery Level 0x2A19, Device Information."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from device_profiles.codecs.common import (
    ADJUST_EXTERNAL_REFERENCE,
    BatteryLevel,
    CurrentTime,
    DateTimeValue,
    InfoString,
    clock_offset,
)
from device_profiles.errors import DecodeError
from device_profiles.gatt import DateTime

# ea07 03 0f 09 1e 0f = 2026-03-15 09:30:15 | 07 Sunday | 80 = 128/256 s | 02 external reference
CURRENT_TIME = bytes.fromhex("ea07030f091e0f078002")


def test_current_time_read() -> None:
    ct = CurrentTime.from_bytes(CURRENT_TIME)
    assert ct.time == DateTime(2026, 3, 15, 9, 30, 15)
    assert (ct.day_of_week, ct.fractions256, ct.adjust_reason) == (7, 128, ADJUST_EXTERNAL_REFERENCE)
    assert ct.to_datetime() == datetime(2026, 3, 15, 9, 30, 15, 500000, tzinfo=UTC)
    assert bytes(ct) == CURRENT_TIME


def test_current_time_to_set_a_clock_in_local_time() -> None:
    now = datetime(2026, 3, 15, 8, 30, 15, 500000, tzinfo=UTC)  # 09:30:15.5 in Stockholm (CET)
    ct = CurrentTime.at(now, ZoneInfo("Europe/Stockholm"))
    assert bytes(ct) == CURRENT_TIME
    assert ct.to_datetime(ZoneInfo("Europe/Stockholm")) == now


@pytest.mark.parametrize(
    "data",
    [
        CURRENT_TIME[:-1],
        bytes.fromhex("ea07030f091e0f088002"),  # day of week 8
        bytes.fromhex("ea07030f091e0f078010"),  # reserved adjust reason bit4
        bytes.fromhex("ea07030f181e0f078002"),  # hour 24
    ],
)
def test_current_time_malformed(data: bytes) -> None:
    with pytest.raises(DecodeError):
        CurrentTime.from_bytes(data)


def test_date_time() -> None:
    data = bytes.fromhex("ea07030f091e0f")
    assert DateTimeValue.from_bytes(data).value == DateTime(2026, 3, 15, 9, 30, 15)
    assert bytes(DateTimeValue.from_bytes(data)) == data
    with pytest.raises(DecodeError):
        DateTimeValue.from_bytes(data[:-1])


@pytest.mark.parametrize(
    ("data", "unset"),
    [
        ("00000000000000", True),  # all unknown
        ("d0070101000000", True),  # 2000-01-01: a reset clock
        ("ea070000000000", True),  # month and day unknown
        ("da070101000000", False),  # 2010-01-01: plausible
    ],
)
def test_clock_unset_detection(data: str, unset: bool) -> None:
    assert DateTime.from_bytes(bytes.fromhex(data)).clock_unset is unset


@pytest.mark.parametrize(
    "data",
    ["2d060101000000", "ea070229000000", "ea07010120000000"[:14], "ea07010100003c", "ea07010100003b00"],
)
def test_impossible_dates(data: str) -> None:
    # year 1581, 29 Feb 2026, 01-01 32:00, second 60, 8 bytes
    with pytest.raises(DecodeError):
        DateTime.from_bytes(bytes.fromhex(data))


def test_leap_day_is_possible() -> None:
    assert DateTime.from_bytes(bytes.fromhex("ec07021d000000")).day == 29  # 2028-02-29


def test_battery_level() -> None:
    assert BatteryLevel.from_bytes(b"\x5a").percent == 90
    assert bytes(BatteryLevel(100)) == b"\x64"
    for bad in (b"", b"\x65", b"\x50\x00"):
        with pytest.raises(DecodeError):
            BatteryLevel.from_bytes(bad)


def test_info_strings() -> None:
    assert InfoString.from_bytes(b"Andetag Medical\x00\x00").text == "Andetag Medical"
    assert InfoString.from_bytes("Värmland-1".encode()).text == "Värmland-1"
    for bad in (b"\xff\xfe", b"abc\x01def", b"x" * 200):
        with pytest.raises(DecodeError):
            InfoString.from_bytes(bad)


def test_clock_offset_from_a_current_time_read() -> None:
    true_now = datetime(2026, 3, 15, 9, 25, 15, 500000, tzinfo=UTC)
    # The device says 09:30:15.5 (UTC wall clock): it is 5 minutes fast.
    assert clock_offset(CURRENT_TIME, true_now) == timedelta(minutes=5)
    assert clock_offset(bytes.fromhex("ea07030f091e0f"), true_now) == timedelta(minutes=4, seconds=59.5)
    assert clock_offset(bytes(7), true_now) is None
