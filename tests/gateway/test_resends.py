"""Devices that forget, devices that keep their memory, devices without a clock: what the
gateway stores, and that a value is on disk before its indication is confirmed."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from device_profiles.wire import Reading
from gateway.outbox import ContentKey, Outbox, content_key
from simulators.ble.devices import BloodPressureCuff, Scale
from simulators.ble.radio import VirtualRadio
from tests.gateway.helpers import running, settings_for, until

AT = datetime(2026, 11, 20, 7, 30, tzinfo=UTC)
DEAD_BROKER = "mqtt://127.0.0.1:9"  # nothing listens: the outbox keeps every reading


def _outbox_bodies(path: Path) -> list[dict[str, object]]:
    con = sqlite3.connect(path, timeout=10)
    try:
        return [json.loads(b) for (b,) in con.execute("SELECT body FROM reading ORDER BY id")]
    finally:
        con.close()


async def test_a_value_is_in_the_outbox_before_the_device_gets_its_confirmation(
    radio: VirtualRadio, tmp_path: Path
) -> None:
    cuff = radio.add(BloodPressureCuff.create(serial="CONF-1"))
    for i in range(5):
        cuff.measure(120 + i, 80, 60, at=AT + timedelta(minutes=i))
    db = tmp_path / "gateway.sqlite3"
    seen_at_confirm: list[int] = []
    original = cuff.confirmed

    def confirmed(uuid: str, data: bytes) -> None:
        # Another connection, as after a crash: only what is committed is visible.
        seen_at_confirm.append(len(_outbox_bodies(db)))
        original(uuid, data)

    cuff.confirmed = confirmed  # type: ignore[method-assign]
    async with running(settings_for(tmp_path, DEAD_BROKER)):
        await until(lambda: len(seen_at_confirm) == 5, what="5 confirmations")
    assert seen_at_confirm == [1, 2, 3, 4, 5]
    assert not cuff.pending
    assert not cuff.inflight


async def test_a_cuff_without_clock_that_resends_its_memory_is_stored_once(radio: VirtualRadio, tmp_path: Path) -> None:
    cuff = radio.add(BloodPressureCuff.create(serial="KEEP-1"))
    cuff.memory, cuff.timestamps = "keep", False
    cuff.measure(130, 85, 70)
    cuff.measure(130, 85, 70)  # the same pressures and pulse twice: two readings
    db = tmp_path / "gateway.sqlite3"
    async with running(settings_for(tmp_path, DEAD_BROKER)):
        await until(lambda: len(cuff.kept) == 2 and not cuff.advertising, what="first transfer")
        cuff.measure(128, 84, 69)  # the next morning: the cuff sends all three
        await until(lambda: len(cuff.kept) == 3 and not cuff.advertising, what="second transfer")
        cuff.measure(130, 85, 70)  # equal to the first, but new: sent after the memory
        await until(lambda: len(cuff.kept) == 4 and not cuff.advertising, what="third transfer")
    systolic = [r["values"]["systolic"]["value"] for r in _outbox_bodies(db)]  # type: ignore[index]
    assert systolic == [130, 130, 128, 130]
    assert cuff.sent_by_uuid[cuff.profile.subscriptions[0].uuid] == 2 + 3 + 4


def _reading(raw: bytes, i: int) -> Reading:
    import base64  # noqa: PLC0415
    import uuid  # noqa: PLC0415

    return Reading.model_validate(
        {
            "reading_id": str(uuid.uuid4()),
            "device": {"address": "AA:BB:CC:DD:EE:FF", "model": "X"},
            "kind": "weight",
            "measured_at": (AT + timedelta(seconds=i)).isoformat(),
            "received_at": (AT + timedelta(seconds=i)).isoformat(),
            "values": {"weight": {"value": 80.0, "unit": "kg"}},
            "raw": base64.b64encode(raw).decode(),
        }
    )


def test_content_keys_recognise_resends_only_in_the_opening_run_and_within_the_window(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite3")
    k = content_key("AA:BB:CC:DD:EE:FF", "weight", b"\x00\x40\x3e")
    day = timedelta(hours=24)

    def add(occ: int, may: bool, at: datetime) -> int:
        return ob.add(
            [_reading(b"\x00\x40\x3e", occ)], content=[ContentKey(k, occ, may)], now=at, resend_window=day
        ).added

    assert add(1, True, AT) == 1  # new
    assert add(1, True, AT + timedelta(hours=1)) == 0  # the same bytes first in a connection: a resend
    assert add(2, True, AT + timedelta(hours=1)) == 1  # a second copy in that connection: new
    assert add(1, False, AT + timedelta(hours=2)) == 1  # after a new value in the connection: new
    # The window slides from the last time a copy was matched; beyond it, a copy is new.
    assert add(1, True, AT + timedelta(hours=20)) == 0  # matches the copy seen at +1 h, refreshing it
    assert add(1, True, AT + timedelta(hours=40)) == 0  # 20 h after the refresh: still a resend
    assert add(1, True, AT + timedelta(hours=80)) == 1  # nothing within 24 h: new
    ob.close()


async def test_a_shared_scale_user_two_is_kept_and_flagged(radio: VirtualRadio, tmp_path: Path) -> None:
    scale = radio.add(Scale.create(serial="SHARED-1"))
    scale.user_id = 2
    scale.measure(92.5, at=AT)
    scale.user_id = 1
    scale.measure(71.0, at=AT + timedelta(minutes=1))
    scale.user_id = 0xFF  # "unknown user": no user index, judged by weight in ingest
    scale.measure(70.8, at=AT + timedelta(minutes=2))
    db = tmp_path / "gateway.sqlite3"
    async with running(settings_for(tmp_path, DEAD_BROKER)):
        await until(lambda: len(_outbox_bodies(db)) == 3, what="three weights")
    got = [(r.get("user_index"), r["flags"]) for r in _outbox_bodies(db)]
    assert got == [(2, ["other_user"]), (1, []), (None, [])]


async def test_the_device_record_says_which_user_the_patient_is(radio: VirtualRadio, tmp_path: Path) -> None:
    cuff = radio.add(BloodPressureCuff.create(serial="SHARED-2"))
    cuff.user_id = 2
    cuff.measure(135, 85, 66, at=AT)
    ob = Outbox(tmp_path / "gateway.sqlite3")
    ob.set_user_index(cuff.address, 2)  # `egenmon-gateway pair ADDRESS --user 2`
    ob.close()
    async with running(settings_for(tmp_path, DEAD_BROKER)):
        await until(lambda: len(_outbox_bodies(tmp_path / "gateway.sqlite3")) == 1, what="the reading")
    (r,) = _outbox_bodies(tmp_path / "gateway.sqlite3")
    assert (r["user_index"], r["flags"]) == (2, [])
