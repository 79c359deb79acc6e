"""Patient outputs without the gateway: speech through the real espeak-ng, quiet hours, the
hub's failure isolation, reminder and receipt decisions on a fake clock, the kiosk page."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from device_profiles.messages import DisplayLimit, FeedbackMessage, ScheduledMeasurement
from gateway.outputs import OutputHub, OutputUnavailableError
from gateway.outputs.led import LedOutput
from gateway.outputs.reminders import ReceiptWatch, ReminderTracker, due_reminders
from gateway.outputs.screen import (
    KioskData,
    LastValue,
    format_value,
    limits_from_config,
    mark_of,
    render_page,
    slot_states,
)
from gateway.outputs.voice import VoiceOutput, in_quiet_hours
from gateway.settings import GatewaySettings

STHLM = ZoneInfo("Europe/Stockholm")


def msg(
    text: str = "Blodtrycket 142/88 är mottaget.", level: str = "receipt", kind: str | None = None
) -> FeedbackMessage:
    now = datetime.now(UTC)
    return FeedbackMessage.model_validate(
        {
            "id": "m-1",
            "level": level,
            "message_sv": text,
            "kind": kind,
            "created_at": now,
            "expires_at": now + timedelta(hours=1),
        }
    )


def sox_duration(wav: Path) -> float:
    return float(subprocess.run(["sox", "--i", "-D", str(wav)], check=True, capture_output=True, text=True).stdout)


def sox_rms(wav: Path) -> float:
    # `sox FILE -n stat` reports on stderr.
    out = subprocess.run(["sox", str(wav), "-n", "stat"], check=True, capture_output=True, text=True).stderr
    [line] = [ln for ln in out.splitlines() if ln.startswith("RMS     amplitude")]
    return float(line.split(":")[1])


NOON = datetime(2026, 11, 21, 11, 0, tzinfo=UTC)  # 12:00 in Stockholm


def test_voice_speaks_swedish_into_a_real_wav(tmp_path: Path) -> None:
    assert shutil.which("espeak-ng"), "apt-get install espeak-ng (./dev test does)"
    assert shutil.which("sox"), "apt-get install sox (./dev test does)"
    wav = tmp_path / "voice" / "say.wav"
    voice = VoiceOutput(wav_path=wav, quiet_hours="22-07", now=lambda: NOON)
    voice.show(msg("Dags att mäta blodtrycket."))
    assert voice.spoken == 1
    assert sox_duration(wav) > 0.5
    assert sox_rms(wav) > 0.01
    # A longer sentence gives longer speech: the text really is what is spoken.
    voice.show(msg("Mätningen är sparad och skickas senare. Du behöver inte göra något mer just nu."))
    assert sox_duration(wav) > 3.0


def test_quiet_hours_silence_the_voice(tmp_path: Path) -> None:
    wav = tmp_path / "say.wav"
    night = datetime(2026, 11, 21, 22, 30, tzinfo=UTC)  # 23:30 in Stockholm
    voice = VoiceOutput(wav_path=wav, quiet_hours="22-07", now=lambda: night)
    voice.show(msg())
    assert not wav.exists()
    assert (voice.spoken, voice.silenced) == (0, 1)


@pytest.mark.parametrize(
    ("utc", "quiet"),
    [
        (datetime(2026, 6, 1, 19, 59, tzinfo=UTC), False),  # 21:59 CEST
        (datetime(2026, 6, 1, 20, 0, tzinfo=UTC), True),  # 22:00 CEST
        (datetime(2026, 6, 1, 4, 59, tzinfo=UTC), True),  # 06:59 CEST
        (datetime(2026, 6, 1, 5, 0, tzinfo=UTC), False),  # 07:00 CEST
        (datetime(2026, 1, 10, 5, 30, tzinfo=UTC), True),  # 06:30 CET: the same UTC hour is quiet in winter
        (datetime(2026, 3, 29, 5, 30, tzinfo=UTC), False),  # 07:30 CEST, the morning after spring forward
    ],
)
def test_quiet_hours_follow_stockholm_wall_clock(utc: datetime, quiet: bool) -> None:
    assert in_quiet_hours(utc, "22-07") is quiet
    assert in_quiet_hours(utc, "") is False


def test_voice_without_espeak_is_unavailable_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng on PATH
    voice = VoiceOutput(wav_path=tmp_path / "x.wav", now=lambda: NOON)
    hub = OutputHub([voice])
    try:
        hub.show(msg())
        hub.show(msg())
        assert hub.drain()
    finally:
        hub.close()
    assert hub.failures == {"voice": 2}


class Boom:
    name = "boom"

    def show(self, msg: FeedbackMessage) -> None:
        raise RuntimeError("display cable pulled")

    def clear(self) -> None:
        raise OutputUnavailableError("gone")


class Keep:
    name = "keep"

    def __init__(self) -> None:
        self.shown: list[str] = []

    def show(self, msg: FeedbackMessage) -> None:
        self.shown.append(msg.message_sv)

    def clear(self) -> None:
        self.shown.append("<clear>")


def test_a_failing_output_is_counted_and_the_others_still_show() -> None:
    keep = Keep()
    counted: list[str] = []
    hub = OutputHub([Boom(), keep], on_failure=counted.append)
    try:
        hub.show(msg("a"))
        hub.clear()
        hub.show(msg("b"))
        assert hub.drain()
    finally:
        hub.close()
    assert keep.shown == ["a", "<clear>", "b"]
    assert hub.failures["boom"] == 3
    assert counted == ["boom", "boom", "boom"]


def test_led_without_gpiod_is_unavailable() -> None:
    with pytest.raises(OutputUnavailableError):
        LedOutput("/dev/gpiochip-does-not-exist").show(msg())


def test_outputs_setting_parses_and_refuses_unknown_names() -> None:
    s = GatewaySettings(outputs=" voice,screen ,voice")
    assert s.output_names == ["voice", "screen"]
    assert GatewaySettings().output_names == []
    with pytest.raises(ValueError, match="unknown outputs"):
        GatewaySettings(outputs="voice,hologram")


# -- reminders on a fake clock ----------------------------------------------------------

BP = [ScheduledMeasurement(kind="blood_pressure", times_local=["08:00", "20:00"])]


def local(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=STHLM)


def due(now: datetime, last: dict[str, datetime] | None = None, escalate: float | None = 120):
    return due_reminders(
        BP,
        now,
        last or {},
        tz=STHLM,
        remind_after=timedelta(minutes=30),
        escalate_after=timedelta(minutes=escalate) if escalate is not None else None,
        early=timedelta(hours=1),
    )


def test_reminder_fires_when_late_escalates_and_is_cancelled_by_the_reading() -> None:
    tracker = ReminderTracker()
    assert tracker.update(due(local(2026, 11, 21, 8, 29))) == ([], [])  # not late yet
    new, _cancelled = tracker.update(due(local(2026, 11, 21, 8, 30)))
    assert [(r.kind, r.level, r.text) for r in new] == [("blood_pressure", "reminder", "Dags att mäta blodtrycket.")]
    assert tracker.update(due(local(2026, 11, 21, 9, 0))) == ([], [])  # shown once, not every tick
    new, _ = tracker.update(due(local(2026, 11, 21, 10, 0)))
    assert [r.level for r in new] == ["contact_care"]
    assert "Ring din vårdcentral eller mottagning om du inte kan mäta" in new[0].text
    # The reading arrives: the reminder is taken back.
    reading = {"blood_pressure": local(2026, 11, 21, 10, 5)}
    assert tracker.update(due(local(2026, 11, 21, 10, 6), reading)) == ([], ["blood_pressure"])
    # The evening slot is a new reminder.
    new, _ = tracker.update(due(local(2026, 11, 21, 20, 31), reading))
    assert [(r.level, r.slot) for r in new] == [("reminder", local(2026, 11, 21, 20).astimezone(UTC))]


def test_reminder_is_not_shown_after_an_early_reading_and_can_stay_gentle() -> None:
    assert due(local(2026, 11, 21, 8, 45), {"blood_pressure": local(2026, 11, 21, 7, 10)}) == []
    assert [r.level for r in due(local(2026, 11, 21, 19, 0), escalate=None)] == ["reminder"]


def test_reminder_across_the_autumn_dst_change() -> None:
    # 25 Oct 2026: clocks go back at 03:00 CEST. The 08:00 slot is 07:00 UTC that day.
    [r] = due(datetime(2026, 10, 25, 7, 30, tzinfo=UTC))
    assert r.slot == datetime(2026, 10, 25, 7, 0, tzinfo=UTC)
    assert due(datetime(2026, 10, 25, 7, 29, tzinfo=UTC)) == []


def test_receipt_watch_times_out_and_is_satisfied_by_the_platform() -> None:
    w = ReceiptWatch(timedelta(seconds=30))
    t0 = NOON
    w.reading("blood_pressure", t0)
    w.reading("weight", t0)
    assert w.overdue(t0 + timedelta(seconds=29)) == []
    w.receipt("blood_pressure")
    assert w.overdue(t0 + timedelta(seconds=30)) == ["weight"]
    assert w.overdue(t0 + timedelta(seconds=60)) == []  # reported once
    w.reading("spo2", t0)
    w.receipt(None)  # a receipt without kind covers everything waiting
    assert w.overdue(t0 + timedelta(minutes=5)) == []


# -- the kiosk page -------------------------------------------------------------------


def test_kiosk_values_are_swedish_and_marked_against_thresholds() -> None:
    bp = LastValue(
        "blood_pressure", NOON, {"systolic": (142, "mm[Hg]"), "diastolic": (88, "mm[Hg]"), "pulse": (71, "/min")}
    )
    wt = LastValue("weight", NOON, {"weight": (85.2, "kg")})
    assert format_value(bp) == "142/88 mmHg, puls 71"
    assert format_value(wt) == "85,2\u00a0kg"

    def lim(component: str, level: str, op: str, value: float) -> DisplayLimit:
        return DisplayLimit(component=f"blood_pressure.{component}", level=level, op=op, value=value, unit="mm[Hg]")  # type: ignore[arg-type]

    th = [lim("systolic", "yellow", "ge", 135), lim("systolic", "red", "ge", 180), lim("diastolic", "yellow", "ge", 85)]
    assert mark_of(bp, th) == "yellow"
    assert mark_of(bp, [lim("systolic", "red", "ge", 140)]) == "red"
    assert mark_of(bp, [lim("systolic", "yellow", "ge", 150)]) == "green"
    assert mark_of(wt, th) is None  # no limits for weight: no colour, no claim
    # The config.json the platform publishes (GatewayConfig.limits); junk entries are skipped.
    raw = {"limits": [t.model_dump() for t in th] + [{"component": "x", "level": "purple"}]}
    assert limits_from_config(raw) == th
    assert limits_from_config({"no": "limits"}) == []


def test_kiosk_slots_done_due_later() -> None:
    slots = {"blood_pressure": [local(2026, 11, 21, 8).astimezone(UTC), local(2026, 11, 21, 20).astimezone(UTC)]}
    one = {"blood_pressure": [local(2026, 11, 21, 8, 10)]}
    states = slot_states(slots, one, local(2026, 11, 21, 12), early=timedelta(hours=1))
    assert [s.state for s in states] == ["done", "later"]
    states = slot_states(slots, {}, local(2026, 11, 21, 20, 5), early=timedelta(hours=1))
    assert [s.state for s in states] == ["due", "due"]
    page = render_page(KioskData(now=NOON, slots=states), msg("Dags att mäta blodtrycket.", "reminder"))
    assert 'lang="sv"' in page
    assert "Dagens mätningar" in page
    assert "Inte gjord ännu" in page
    assert "Dags att mäta blodtrycket." in page


def test_the_care_plans_reminder_timing_wins_over_the_gateways() -> None:
    """A schedule item from the config may carry the care plan's own timing for its kind."""
    own = [
        ScheduledMeasurement(kind="blood_pressure", times_local=["08:00"], remind_after_min=10, escalate_after_min=45)
    ]
    never = [ScheduledMeasurement(kind="blood_pressure", times_local=["08:00"], escalate_after_min=0)]

    def at(items: list[ScheduledMeasurement], h: int, mi: int) -> list[str]:
        return [
            r.level
            for r in due_reminders(
                items,
                local(2026, 11, 21, h, mi),
                {},
                tz=STHLM,
                remind_after=timedelta(minutes=30),
                escalate_after=timedelta(minutes=120),
                early=timedelta(hours=1),
            )
        ]

    assert at(own, 8, 9) == []
    assert at(own, 8, 10) == ["reminder"]  # 10 min, not the gateway's 30
    assert at(own, 8, 45) == ["contact_care"]  # 45 min, not 120
    assert at(never, 11, 0) == ["reminder"]  # 0: this patient is never told to ring
