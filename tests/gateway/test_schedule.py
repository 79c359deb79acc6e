"""Measurement schedule reminders: which scheduled kinds are overdue (pure, and in the status)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from device_profiles.messages import GatewayConfig, GatewayStatus, ScheduledMeasurement
from gateway.logic import overdue_kinds
from gateway.service import Gateway
from simulators.ble.devices import BloodPressureCuff
from simulators.ble.radio import VirtualRadio
from tests.gateway.helpers import Collector, running, settings_for, until
from tests.ingest.helpers import publish

STHLM = ZoneInfo("Europe/Stockholm")
BP = "blood_pressure"


def local(y: int, mo: int, d: int, h: int, mi: int) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=STHLM)


def sched(kind: str, *times: str) -> ScheduledMeasurement:
    return ScheduledMeasurement(kind=kind, times_local=list(times))


def test_due_only_after_the_grace_period() -> None:
    s = [sched(BP, "08:00")]
    assert overdue_kinds(s, local(2026, 11, 25, 8, 20), {}, tz=STHLM) == []
    assert overdue_kinds(s, local(2026, 11, 25, 8, 31), {}, tz=STHLM) == [BP]


def test_a_reading_a_little_ahead_of_time_counts_one_too_early_does_not() -> None:
    s = [sched(BP, "08:00")]
    now = local(2026, 11, 25, 9, 0)
    assert overdue_kinds(s, now, {BP: local(2026, 11, 25, 7, 10)}, tz=STHLM) == []
    assert overdue_kinds(s, now, {BP: local(2026, 11, 25, 6, 50)}, tz=STHLM) == [BP]


def test_only_the_latest_due_time_counts() -> None:
    s = [sched(BP, "08:00", "20:00"), sched("weight", "07:00")]
    now = local(2026, 11, 25, 21, 0)
    morning_only = {BP: local(2026, 11, 25, 8, 5), "weight": local(2026, 11, 25, 6, 45)}
    assert overdue_kinds(s, now, morning_only, tz=STHLM) == [BP]
    evening = {BP: local(2026, 11, 25, 19, 30), "weight": local(2026, 11, 25, 6, 45)}
    assert overdue_kinds(s, now, evening, tz=STHLM) == []


def test_yesterdays_evening_slot_is_checked_before_todays_first() -> None:
    s = [sched(BP, "20:00", "08:00")]
    now = local(2026, 11, 25, 7, 0)
    assert overdue_kinds(s, now, {BP: local(2026, 11, 24, 19, 30)}, tz=STHLM) == []
    assert overdue_kinds(s, now, {BP: local(2026, 11, 24, 8, 0)}, tz=STHLM) == [BP]
    assert overdue_kinds(s, now, {}, tz=STHLM) == [BP]


def test_unparseable_times_and_empty_schedules_are_ignored() -> None:
    s = [sched(BP, "25:99", "abc", ""), sched("weight")]
    assert overdue_kinds(s, local(2026, 11, 25, 12, 0), {}, tz=STHLM) == []


def test_local_time_follows_daylight_saving() -> None:
    # 2026-10-25: Stockholm goes from CEST (UTC+2) back to CET (UTC+1) at 03:00.
    # 08:00 local that day is 07:00 UTC, not 06:00 UTC.
    s = [sched(BP, "08:00")]
    assert overdue_kinds(s, datetime(2026, 10, 25, 7, 20, tzinfo=UTC), {}, tz=STHLM) == []
    assert overdue_kinds(s, datetime(2026, 10, 25, 7, 31, tzinfo=UTC), {}, tz=STHLM) == [BP]
    # A reading at 06:30 UTC (07:30 local) is within the hour before: done.
    done = {BP: datetime(2026, 10, 25, 6, 30, tzinfo=UTC)}
    assert overdue_kinds(s, datetime(2026, 10, 25, 9, 0, tzinfo=UTC), done, tz=STHLM) == []


@given(
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)),
    st.lists(st.tuples(st.integers(0, 23), st.integers(0, 59)), min_size=1, max_size=6),
)
def test_a_reading_just_taken_is_never_overdue(now: datetime, times: list[tuple[int, int]]) -> None:
    s = [sched(BP, *(f"{h:02d}:{m:02d}" for h, m in times))]
    assert overdue_kinds(s, now, {BP: now}, tz=STHLM) == []
    # ...and with no reading at all, the kind is overdue exactly when some time is due.
    assert overdue_kinds(s, now, {}, tz=STHLM) in ([], [BP])


async def test_status_lists_overdue_kinds_and_remembers_readings_across_restarts(
    radio: VirtualRadio, tmp_path: Path, mqtt_url: str
) -> None:
    gw_id = "gw-schedule-1"
    collector = Collector(mqtt_url, [f"egenmon/v1/gw/{gw_id}/status"])
    two_hours_ago = (datetime.now(UTC) - timedelta(hours=2)).astimezone(STHLM).strftime("%H:%M")
    config = GatewayConfig(schedule=[sched(BP, two_hours_ago), sched("weight", two_hours_ago)])
    publish(mqtt_url, f"egenmon/v1/gw/{gw_id}/config", [config.model_dump_json(by_alias=True).encode()], retain=True)
    cuff = radio.add(BloodPressureCuff.create())
    assert isinstance(cuff, BloodPressureCuff)

    def latest() -> GatewayStatus | None:
        docs = [p for p in collector.payloads("/status") if p.startswith(b"{")]
        return GatewayStatus.model_validate_json(docs[-1]) if docs else None

    try:
        async with running(settings_for(tmp_path, mqtt_url, gw_id)) as gw:
            await until(lambda: gw.config.schedule != [], what="config received")
            await until(lambda: (s := latest()) is not None and set(s.overdue_kinds) == {BP, "weight"}, what="both due")
            cuff.measure(128, 82, 66)
            await until(lambda: (s := latest()) is not None and s.overdue_kinds == ["weight"], what="BP taken")
        # A restart (without the broker) still knows the blood pressure was measured.
        again = Gateway(settings_for(tmp_path, "mqtt://127.0.0.1:1", gw_id))
        try:
            assert again.overdue() == ["weight"]
        finally:
            again.outbox.close()
    finally:
        publish(mqtt_url, f"egenmon/v1/gw/{gw_id}/config", [b""], retain=True)
        collector.close()
