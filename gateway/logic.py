"""The gateway's decisions as plain functions and small state machines, without I/O.

The BLE, SQLite and MQTT shells call these; the tests drive them directly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from device_profiles.codecs.racp import RacpRequest

# A device clock before this year was never set (device_profiles uses the same cut-off).
CLOCK_PLAUSIBLE_FROM_YEAR = 2010


def backoff_delay(attempt: int, *, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """Delay before connection attempt ``attempt`` (1 = the first retry).

    Exponential with "full jitter" so that a gateway with several devices, or many gateways
    after a power cut, do not retry in lock-step.
    """
    if attempt <= 0:
        return 0.0
    ceiling = min(cap_s, base_s * 2 ** (attempt - 1))
    return (rng or random).uniform(ceiling / 2, ceiling)


@dataclass
class DeviceBackoff:
    """Per-device reconnect state: failures push the next allowed attempt further out."""

    base_s: float
    cap_s: float
    failures: int = 0
    not_before: float = 0.0

    def may_connect(self, now: float) -> bool:
        return now >= self.not_before

    def failed(self, now: float, rng: random.Random | None = None) -> float:
        self.failures += 1
        delay = backoff_delay(self.failures, base_s=self.base_s, cap_s=self.cap_s, rng=rng)
        self.not_before = now + delay
        return delay

    def succeeded(self, now: float, cooldown_s: float) -> None:
        self.failures = 0
        self.not_before = now + cooldown_s


def racp_request_for(last_sequence: int | None) -> RacpRequest:
    """What to ask a glucose meter for: everything after the last record we hold.

    Glucose Profile §4.9: "report stored records, greater than or equal to sequence
    number"; the sequence is a uint16, so after 65535 the meter wraps and we ask for all.
    """
    if last_sequence is None or last_sequence >= 0xFFFF:
        return RacpRequest.report_all()
    return RacpRequest.report_from_sequence(last_sequence + 1)


@dataclass(frozen=True)
class ClockAssessment:
    """Device clock minus gateway clock, and how readings from this device are treated."""

    offset: timedelta | None
    unset: bool
    correct: bool  # apply ``offset`` to the device's timestamps and flag them


def assess_clock(device_time: datetime | None, gateway_now: datetime, *, tolerance_s: float) -> ClockAssessment:
    """Decide from the device's Current Time whether its timestamps can be trusted."""
    if device_time is None or device_time.year < CLOCK_PLAUSIBLE_FROM_YEAR:
        return ClockAssessment(offset=None, unset=True, correct=False)
    offset = device_time - gateway_now
    return ClockAssessment(offset=offset, unset=False, correct=abs(offset.total_seconds()) > tolerance_s)


@dataclass
class DecodeCounters:
    """Per-device count of values that could not be decoded (reported in the status)."""

    by_device: dict[str, int] = field(default_factory=dict)

    def count(self, address: str) -> int:
        self.by_device[address] = self.by_device.get(address, 0) + 1
        return self.by_device[address]


def outbox_alarm(depth: int, capacity: int) -> bool:
    """The status raises the alarm when the outbox is full (the gateway stops reading devices)."""
    return depth >= capacity


def plan_batches(pending: list[int], max_per_batch: int) -> list[list[int]]:
    """Split outbox row ids (in arrival order) into batches of at most ``max_per_batch``."""
    return [pending[i : i + max_per_batch] for i in range(0, len(pending), max_per_batch)]
