"""The gateway's side of the patient channel: platform messages, local reminders and the
receipt fallback, shown through the configured outputs.

Called from three threads (paho's for platform messages, the asyncio loop for readings and
ticks, the kiosk's HTTP threads for the page); one lock guards the state. Nothing here
raises into its callers: the BLE session and the MQTT loop must go on whatever an output does.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from device_profiles.messages import FeedbackMessage, ScheduledMeasurement
from device_profiles.wire import Reading
from gateway.metrics import Metrics
from gateway.outputs import Output, OutputHub
from gateway.outputs.led import LedOutput
from gateway.outputs.reminders import (
    RECEIPT_FALLBACK_SV,
    ReceiptWatch,
    Reminder,
    ReminderTracker,
    due_reminders,
    slots_on,
)
from gateway.outputs.screen import KioskData, LastValue, ScreenOutput, limits_from_config, load_json, slot_states
from gateway.outputs.voice import VoiceOutput
from gateway.settings import GatewaySettings

logger = logging.getLogger(__name__)

STOCKHOLM = ZoneInfo("Europe/Stockholm")
LAST_VALUES_FILE = "last_values.json"
LOCAL_PREFIX = "gw-"  # ids of the gateway's own messages (never acknowledged to the platform)
RECENT = timedelta(hours=48)


class PatientChannel:
    def __init__(
        self,
        settings: GatewaySettings,
        metrics: Metrics,
        *,
        schedule: Callable[[], Sequence[ScheduledMeasurement]],
        last_reading: Callable[[], Mapping[str, datetime]],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        outputs: list[Output] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.schedule = schedule
        self.gateway_last = last_reading
        self.now = now
        self._lock = threading.RLock()
        self.last_values: dict[str, LastValue] = self._load_last_values()
        self.recent: dict[str, list[datetime]] = {k: [v.measured_at] for k, v in self.last_values.items()}
        self.tracker = ReminderTracker()
        self.receipts = ReceiptWatch(timedelta(seconds=settings.receipt_timeout_s))
        self.current: FeedbackMessage | None = None
        self.screen: ScreenOutput | None = None
        built = outputs if outputs is not None else self._build(settings)
        self.hub = OutputHub(built, on_failure=lambda name: metrics.output_failures.labels(name).inc())

    # -- outputs -------------------------------------------------------------------------

    def _build(self, s: GatewaySettings) -> list[Output]:
        out: list[Output] = []
        for name in s.output_names:
            try:
                if name == "voice":
                    out.append(
                        VoiceOutput(
                            voice=s.voice_name,
                            volume_pct=s.voice_volume,
                            quiet_hours=s.voice_quiet_hours,
                            wav_path=s.voice_wav_path,
                            now=self.now,
                        )
                    )
                elif name == "screen":
                    self.screen = ScreenOutput(self.kiosk_data, port=s.screen_port, refresh_s=s.screen_refresh_s)
                    out.append(self.screen)
                elif name == "led":
                    out.append(LedOutput(s.led_chip, s.led_line, s.buzzer_line))
            except OSError as err:
                # e.g. the kiosk port is taken: the other outputs and the gateway go on.
                self.metrics.output_failures.labels(name).inc()
                logger.error("patient_output_not_started output=%s error=%s", name, err)
        logger.info("patient_outputs outputs=%s", ",".join(o.name for o in out) or "none")
        return out

    def close(self) -> None:
        self.hub.close()
        if self.screen is not None:
            self.screen.close()

    def _show(self, msg: FeedbackMessage) -> None:
        self.current = msg
        self.hub.show(msg)

    def _local(self, level: str, text: str, kind: str | None, key: str, ttl: timedelta) -> FeedbackMessage:
        now = self.now()
        return FeedbackMessage.model_validate(
            {
                "id": (LOCAL_PREFIX + key)[:64],
                "level": level,
                "message_sv": text,
                "kind": kind,
                "created_at": now,
                "expires_at": now + ttl,
            }
        )

    # -- events ----------------------------------------------------------------------------

    def platform_message(self, msg: FeedbackMessage) -> None:
        """A message from the platform (already checked for expiry)."""
        with self._lock:
            if msg.level == "receipt":
                self.receipts.receipt(msg.kind)
            self._show(msg)

    def readings_added(self, readings: list[Reading]) -> None:
        """Readings just stored in the outbox (the outbox calls this after its commit)."""
        try:
            with self._lock:
                now = self.now()
                for r in readings:
                    kind = r.kind.value
                    at = r.measured_at.astimezone(UTC)
                    times = [t for t in self.recent.get(kind, []) if now - t <= RECENT]
                    times.append(at)
                    self.recent[kind] = times[-64:]
                    prev = self.last_values.get(kind)
                    if prev is None or at >= prev.measured_at:
                        self.last_values[kind] = LastValue(
                            kind, at, {n: (v.value, v.unit.value) for n, v in r.values.items()}
                        )
                    self.receipts.reading(kind, now)
                self._save_last_values()
                self._reconcile(now)
        except Exception:
            self.metrics.output_failures.labels("channel").inc()
            logger.exception("patient_channel_failed event=readings")

    def tick(self) -> None:
        """Reminders due or taken back, receipts overdue: called every ``outputs_tick_s``."""
        try:
            with self._lock:
                now = self.now()
                self._reconcile(now)
                for kind in self.receipts.overdue(now):
                    self._show(
                        self._local("receipt", RECEIPT_FALLBACK_SV, kind, f"receipt-{kind}", timedelta(minutes=10))
                    )
        except Exception:
            self.metrics.output_failures.labels("channel").inc()
            logger.exception("patient_channel_failed event=tick")

    def _last_reading(self) -> dict[str, datetime]:
        merged = dict(self.gateway_last())
        for kind, times in self.recent.items():
            if times and (kind not in merged or max(times) > merged[kind]):
                merged[kind] = max(times)
        return merged

    def _reconcile(self, now: datetime) -> None:
        s = self.settings
        due = due_reminders(
            self.schedule(),
            now,
            self._last_reading(),
            tz=STOCKHOLM,
            remind_after=timedelta(seconds=s.reminder_grace_s),
            escalate_after=timedelta(seconds=s.reminder_escalate_s) if s.reminder_escalate_s > 0 else None,
            early=timedelta(seconds=s.reminder_early_s),
        )
        new, cancelled = self.tracker.update(due)
        cur = self.current
        if cur is not None and cur.id.startswith(LOCAL_PREFIX + "reminder-") and cur.kind in cancelled:
            # The reading the reminder asked for has come: take it back at once.
            self.current = None
            self.hub.clear()
            logger.info("reminder_cancelled kind=%s", cur.kind)
        for r in new:
            self._show(self._reminder_message(r))
            logger.info("reminder_shown kind=%s level=%s slot=%s", r.kind, r.level, r.slot.isoformat())

    def _reminder_message(self, r: Reminder) -> FeedbackMessage:
        return self._local(r.level, r.text, r.kind, f"reminder-{r.key}", timedelta(hours=12))

    # -- the kiosk's data ------------------------------------------------------------------

    def kiosk_data(self) -> KioskData:
        with self._lock:
            now = self.now()
            today = now.astimezone(STOCKHOLM).date()
            slots = {item.kind: slots_on(today, item.times_local, STOCKHOLM) for item in self.schedule()}
            states = slot_states(slots, self.recent, now, early=timedelta(seconds=self.settings.reminder_early_s))
            last = sorted(self.last_values.values(), key=lambda v: v.kind)
        path = self.settings.state_dir / "config.json"
        raw = load_json(path.read_text()) if path.exists() else None
        return KioskData(now=now, slots=states, last=last, limits=limits_from_config(raw))

    def _path(self) -> Path:
        return self.settings.state_dir / LAST_VALUES_FILE

    def _load_last_values(self) -> dict[str, LastValue]:
        raw = load_json(self._path().read_text()) if self._path().exists() else None
        out: dict[str, LastValue] = {}
        if isinstance(raw, dict):
            for kind, doc in raw.items():
                try:
                    vals = {n: (None if v is None else float(v), str(u)) for n, (v, u) in doc["values"].items()}
                    out[kind] = LastValue(kind, datetime.fromisoformat(doc["measured_at"]), vals)
                except (KeyError, TypeError, ValueError):
                    continue
        return out

    def _save_last_values(self) -> None:
        doc = {
            k: {"measured_at": v.measured_at.isoformat(), "values": {n: list(x) for n, x in v.values.items()}}
            for k, v in self.last_values.items()
        }
        tmp = self._path().with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, ensure_ascii=False))
        tmp.replace(self._path())
