"""Clock health: the kernel's NTP state (adjtimex) and each device's clock offset in the status."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from device_profiles.messages import GatewayStatus
from gateway.clock import STA_NANO, STA_UNSYNC, TIME_ERROR, TimexReading, interpret, read_kernel_clock, read_timex
from simulators.ble.devices import BloodPressureCuff
from simulators.ble.radio import VirtualRadio
from tests.gateway.helpers import Collector, running, settings_for, until

STA_PLL = 0x0001


def test_synchronised_clock_reports_its_offset_in_seconds_gateway_minus_reference() -> None:
    # timesyncd style: PLL on, offset in microseconds; the kernel still has to add 1.5 ms.
    health = interpret(TimexReading(state=0, status=STA_PLL, offset=1500, maxerror=250_000, esterror=2_000))
    assert health.synchronised
    assert health.offset_s == pytest.approx(-0.0015)
    assert health.max_error_s == pytest.approx(0.25)
    assert health.est_error_s == pytest.approx(0.002)


def test_nano_mode_offset_is_in_nanoseconds() -> None:
    health = interpret(TimexReading(state=0, status=STA_PLL | STA_NANO, offset=-2_500_000, maxerror=10, esterror=1))
    assert health.synchronised
    assert health.offset_s == pytest.approx(0.0025)
    # maxerror / esterror stay in microseconds in nano mode.
    assert health.max_error_s == pytest.approx(1e-5)


def test_unsynchronised_clock_has_no_offset() -> None:
    health = interpret(
        TimexReading(state=TIME_ERROR, status=STA_UNSYNC, offset=123, maxerror=16_000_000, esterror=16_000_000)
    )
    assert not health.synchronised
    assert health.offset_s is None
    assert health.max_error_s == pytest.approx(16.0)


def test_any_sign_of_lost_discipline_means_unsynchronised() -> None:
    # The return value alone, or a maxerror past the kernel's 16 s limit, is enough.
    assert not interpret(TimexReading(state=TIME_ERROR, status=0, offset=0, maxerror=1000, esterror=0)).synchronised
    assert not interpret(TimexReading(state=0, status=0, offset=0, maxerror=16_000_000, esterror=0)).synchronised
    assert interpret(TimexReading(state=0, status=0, offset=0, maxerror=15_999_999, esterror=0)).synchronised


def test_the_real_syscall_answers_sanely_on_this_machine() -> None:
    raw = read_timex()
    if not sys.platform.startswith("linux"):
        # No adjtimex: the status says "unknown" rather than guessing.
        assert raw is None
        assert read_kernel_clock() is None
        return
    assert raw is not None
    assert 0 <= raw.state <= TIME_ERROR  # TIME_OK .. TIME_ERROR
    assert 0 <= raw.maxerror <= 16_000_000
    assert 0 <= raw.esterror <= 16_000_000
    health = read_kernel_clock()
    assert health is not None
    assert health.synchronised == (not raw.status & STA_UNSYNC and raw.state != TIME_ERROR and raw.maxerror < 16e6)
    if health.offset_s is not None:
        assert abs(health.offset_s) < 16  # the kernel steps, not slews, beyond this


async def test_status_carries_gateway_and_device_clock_offsets(
    radio: VirtualRadio, tmp_path: Path, mqtt_url: str
) -> None:
    gw_id = "gw-clock-status-1"
    collector = Collector(mqtt_url, [f"egenmon/v1/gw/{gw_id}/status"])
    skewed = radio.add(BloodPressureCuff.create("F0:00:00:00:20:01"))
    right = radio.add(BloodPressureCuff.create("F0:00:00:00:20:02"))
    assert isinstance(skewed, BloodPressureCuff)
    assert isinstance(right, BloodPressureCuff)
    skewed.clock_offset = timedelta(minutes=-7, seconds=-30)
    now = datetime.now(UTC).replace(microsecond=0)
    skewed.measure(130, 85, 70, at=now)
    right.measure(120, 80, 60, at=now)

    def statuses() -> list[GatewayStatus]:
        return [GatewayStatus.model_validate_json(p) for p in collector.payloads("/status") if p.startswith(b"{")]

    def device_offsets() -> dict[str, float]:
        # The first observation of each device (the gateway sets the clock right after).
        seen: dict[str, float] = {}
        for s in statuses():
            for d in s.devices:
                if d.clock_offset_s is not None:
                    seen.setdefault(d.address, d.clock_offset_s)
        return seen

    try:
        async with running(settings_for(tmp_path, mqtt_url, gw_id)):
            await until(lambda: len(device_offsets()) == 2, what="both device clocks in the status")
        offsets = device_offsets()
        assert offsets[skewed.address] == pytest.approx(-450, abs=3)
        assert abs(offsets[right.address]) < 3
        assert skewed.clock_writes >= 1  # and it was set afterwards
        status = statuses()[-1]
        kernel = read_kernel_clock()
        if sys.platform.startswith("linux"):
            assert kernel is not None
            assert status.clock_synchronised is kernel.synchronised
            assert status.clock_max_error_s is not None
            assert (status.clock_offset_s is None) == (not kernel.synchronised)
        # The wire payload carries the fields by name, for consumers that do not use pydantic.
        raw = json.loads([p for p in collector.payloads("/status") if p.startswith(b"{")][-1])
        assert {"clock_offset_s", "clock_synchronised", "clock_max_error_s"} <= set(raw)
        assert {"clock_offset_s", "clock_unset"} <= set(raw["devices"][0])
    finally:
        collector.close()
