"""The gateway's decisions as plain functions and small state machines, without I/O.

The BLE, SQLite and MQTT shells call these; the tests drive them directly.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo

from device_profiles.codecs.racp import RacpRequest
from device_profiles.messages import ScheduledMeasurement

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


def _parse_hhmm(text: str) -> time | None:
    try:
        hh, mm = text.split(":")
        return time(int(hh), int(mm))
    except ValueError:
        return None


def overdue_kinds(
    schedule: Sequence[ScheduledMeasurement],
    now: datetime,
    last_reading: Mapping[str, datetime],
    *,
    tz: tzinfo,
    grace: timedelta = timedelta(minutes=30),
    early: timedelta = timedelta(hours=1),
) -> list[str]:
    """Scheduled kinds whose latest due measurement has not been taken.

    A measurement scheduled at local time T (``HH:MM`` in ``tz``, Europe/Stockholm) is due
    once ``grace`` has passed after T; it is done by any reading of that kind measured from
    ``early`` before T on (a patient measuring a little ahead of time has measured). Only
    the latest due time of the last 24 hours counts, so a kind is reminded of once, not for
    every missed slot. Unparseable times are ignored. All comparisons are in UTC, because
    aware datetimes sharing one tzinfo compare by wall time, which is wrong across DST.
    """
    now_utc = now.astimezone(UTC)
    local_today = now_utc.astimezone(tz).date()
    overdue: list[str] = []
    for item in schedule:
        due: list[datetime] = []
        for text in item.times_local:
            t = _parse_hhmm(text)
            if t is None:
                continue
            for day in (local_today - timedelta(days=1), local_today):
                slot = datetime.combine(day, t, tzinfo=tz).astimezone(UTC)
                if slot + grace <= now_utc and now_utc - slot <= timedelta(days=1):
                    due.append(slot)
        if not due:
            continue
        latest = max(due)
        last = last_reading.get(item.kind)
        if (last is None or last.astimezone(UTC) < latest - early) and item.kind not in overdue:
            overdue.append(item.kind)
    return overdue


@dataclass
class ScanWatchdog:
    """Decides when a silent scanner is restarted and when the adapter is power-cycled.

    BlueZ discovery on a Raspberry Pi can stop delivering advertisements without an error
    (firmware hangs of the built-in Wi-Fi/BT combo chip, a discovery that ends by itself).
    With nothing heard for ``silence_s`` the discovery is restarted; after
    ``reset_after`` restarts in a row that heard nothing (or a scanner that fails to
    start), the adapter is reset, at most once per ``reset_min_interval_s``. Health
    devices advertise only when they have something to send, so a quiet home is silent
    too: restarting discovery then costs nothing, and the reset interval bounds how often
    a quiet home power-cycles its adapter. Monotonic seconds; no I/O.
    """

    silence_s: float
    reset_after: int = 2
    reset_min_interval_s: float = 3600.0
    last_heard: float = 0.0
    silent_restarts: int = 0
    last_reset: float | None = None

    def heard(self, now: float) -> None:
        self.last_heard = now
        self.silent_restarts = 0

    def failed(self) -> None:
        """The scanner could not be (re)started: the next action resets the adapter if allowed."""
        self.silent_restarts = max(self.silent_restarts, self.reset_after)

    def check(self, now: float) -> str | None:
        """``"restart"``, ``"reset"`` (then restart) or None."""
        if self.silence_s <= 0 or now - self.last_heard < self.silence_s:
            return None
        self.last_heard = now  # each action gets a whole silence period to show it helped
        may_reset = self.last_reset is None or now - self.last_reset >= self.reset_min_interval_s
        if self.silent_restarts >= self.reset_after and may_reset:
            self.silent_restarts = 0
            self.last_reset = now
            return "reset"
        self.silent_restarts += 1
        return "restart"
