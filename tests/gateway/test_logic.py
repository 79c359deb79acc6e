"""The gateway's decisions, driven directly (no I/O)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from device_profiles.codecs.racp import RacpOperator, RacpRequest
from gateway.logic import (
    DeviceBackoff,
    assess_clock,
    backoff_delay,
    outbox_alarm,
    plan_batches,
    racp_request_for,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@given(st.integers(min_value=1, max_value=60), st.floats(0.01, 10), st.floats(0.01, 600), st.integers(0, 2**32))
def test_backoff_stays_within_half_and_full_ceiling(attempt: int, base: float, cap: float, seed: int) -> None:
    delay = backoff_delay(attempt, base_s=base, cap_s=cap, rng=random.Random(seed))
    ceiling = min(cap, base * 2 ** (attempt - 1))
    assert ceiling / 2 <= delay <= ceiling


def test_backoff_grows_then_resets_after_success() -> None:
    bo = DeviceBackoff(base_s=1.0, cap_s=8.0)
    rng = random.Random(1)
    delays = [bo.failed(100.0, rng) for _ in range(6)]
    assert delays[0] <= 1.0
    assert delays[-1] >= 4.0  # capped at 8, at least half of it
    assert not bo.may_connect(100.0)
    bo.succeeded(200.0, cooldown_s=5)
    assert bo.failures == 0
    assert not bo.may_connect(204.0)
    assert bo.may_connect(205.0)


def test_racp_asks_for_everything_first_then_only_newer_records() -> None:
    assert racp_request_for(None) == RacpRequest.report_all()
    req = racp_request_for(120)
    assert req.operator is RacpOperator.GREATER_THAN_OR_EQUAL
    assert req.min_sequence == 121
    # Glucose Service: the operand is filter type 0x01 (sequence number) + uint16 LE.
    assert bytes(req) == bytes([0x01, 0x03, 0x01, 121, 0])
    # A meter whose 16-bit counter wrapped gets asked for everything (ids dedupe).
    assert racp_request_for(0xFFFF) == RacpRequest.report_all()


def test_clock_assessment() -> None:
    unset = assess_clock(datetime(2000, 1, 1, 0, 5, tzinfo=UTC), NOW, tolerance_s=120)
    assert unset.unset
    assert not unset.correct
    assert assess_clock(None, NOW, tolerance_s=120).unset
    close = assess_clock(NOW + timedelta(seconds=30), NOW, tolerance_s=120)
    assert not close.unset
    assert not close.correct
    skewed = assess_clock(NOW - timedelta(hours=1), NOW, tolerance_s=120)
    assert skewed.correct
    assert skewed.offset == timedelta(hours=-1)


def test_outbox_alarm_and_batch_plan() -> None:
    assert not outbox_alarm(99, 100)
    assert outbox_alarm(100, 100)
    assert plan_batches(list(range(5)), 2) == [[0, 1], [2, 3], [4]]
    assert plan_batches([], 2) == []
