"""The scanner watchdog: a silent or failing Bluetooth adapter (as on a Raspberry Pi) is
restarted, then reset, and the gateway reads its devices again; the status says so."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.logic import ScanWatchdog
from simulators.ble.devices import BloodPressureCuff
from simulators.ble.radio import VirtualRadio
from tests.gateway.helpers import running, settings_for, until

AT = datetime(2026, 11, 20, 7, 30, tzinfo=UTC)
DEAD_BROKER = "mqtt://127.0.0.1:9"


def test_the_watchdog_restarts_then_resets_at_most_once_per_interval() -> None:
    w = ScanWatchdog(silence_s=10, reset_after=2, reset_min_interval_s=100, last_heard=0)
    assert w.check(5) is None
    assert [w.check(t) for t in (10, 20, 30, 40, 50, 60)] == [
        "restart",
        "restart",
        "reset",
        "restart",
        "restart",
        "restart",
    ]
    assert w.check(130) == "reset"  # 100 s after the last reset
    w.heard(131)
    assert w.check(140) is None
    assert w.check(141) == "restart"  # the count of silent restarts began again
    w.failed()  # the scanner would not start: reset as soon as allowed
    assert w.check(151) == "restart"  # ... which is not yet (130 + 100)
    assert w.check(231) == "reset"


def test_a_watchdog_of_zero_never_acts() -> None:
    assert ScanWatchdog(silence_s=0).check(1e9) is None


def _status(state: Path) -> dict[str, object]:
    return json.loads((state / "status.json").read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("fault", "resets"),
    [("restart", 0), ("reset", 1), ("errors", 1)],
    ids=["silent-until-restart", "silent-until-reset", "scanner-start-errors"],
)
async def test_a_silent_or_failing_adapter_recovers(
    radio: VirtualRadio, tmp_path: Path, fault: str, resets: int
) -> None:
    cuff = radio.add(BloodPressureCuff.create(serial="WD-1"))
    cuff.measure(131, 84, 64, at=AT)
    if fault == "errors":
        radio.scan_start_errors = 5  # every start fails until the adapter is reset
    else:
        radio.silent_until = fault
    settings = settings_for(
        tmp_path,
        DEAD_BROKER,
        ble_scan_watchdog_s=0.4,
        ble_adapter_reset_after=1,
        ble_adapter_reset_min_interval_s=0,
    )
    async with running(settings) as gw:
        await until(lambda: gw.outbox.depth == 1, limit_s=15, what="the reading after recovery")
        await until(lambda: _status(tmp_path).get("last_advertisement_at") is not None, what="status written")
        status = gw.status()
    assert status.adapter_resets == resets == radio.adapter_resets
    assert status.scanner_restarts >= 1
    assert status.last_advertisement_at is not None
    assert _status(tmp_path)["scanner_restarts"] == status.scanner_restarts


async def test_an_adapter_that_hears_advertisements_is_left_alone(radio: VirtualRadio, tmp_path: Path) -> None:
    cuff = radio.add(BloodPressureCuff.create(serial="WD-2"))
    cuff.measure(131, 84, 64, at=AT)  # not paired: the cuff keeps advertising, unread
    settings = settings_for(tmp_path, DEAD_BROKER, ble_scan_watchdog_s=0.4, auto_accept=False)
    async with running(settings) as gw:
        await asyncio.sleep(1.6)  # four silence periods
        assert radio.advertisements > 10
        assert gw.status().scanner_restarts == 0
    assert radio.adapter_resets == 0
