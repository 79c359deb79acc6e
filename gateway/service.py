"""``gateway run``: scanner, device sessions, outbox pump and heartbeat in one asyncio loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from device_profiles.messages import DeviceStatus, FeedbackAck, FeedbackMessage, GatewayConfig, GatewayStatus
from device_profiles.profile import DeviceProfile, Registry
from device_profiles.registry import default_registry, registry_with_dirs
from gateway import __version__
from gateway.adapter import reset_adapter
from gateway.ble import BleConfig, DeviceCollector, DeviceHealth, Scanner, client_backend, scanner_backend
from gateway.clock import read_kernel_clock
from gateway.errors import GatewayError, NotEnrolledError
from gateway.feedback import FeedbackSink, FileFeedbackSink
from gateway.logic import DecodeCounters, DeviceBackoff, ScanWatchdog, outbox_alarm, overdue_kinds
from gateway.metrics import Metrics
from gateway.outbox import Outbox
from gateway.outputs.channel import PatientChannel
from gateway.publisher import BrokerConfig, Publisher
from gateway.settings import GatewaySettings

logger = logging.getLogger(__name__)

# The config's schedule times are Europe/Stockholm by contract (GatewayConfig).
SCHEDULE_TZ = ZoneInfo("Europe/Stockholm")
LAST_READING_META = "last_reading:"


def broker_config(settings: GatewaySettings) -> BrokerConfig:
    if not settings.gateway_id or not settings.mqtt_url:
        raise NotEnrolledError("gateway_id and mqtt_url are not configured; run `egenmon-gateway enroll`")
    return BrokerConfig(
        url=settings.mqtt_url,
        gateway_id=settings.gateway_id,
        username=settings.mqtt_username,
        password=settings.mqtt_password,
        ca_file=str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None,
        cert_file=str(settings.mqtt_cert_file) if settings.mqtt_cert_file else None,
        key_file=str(settings.mqtt_key_file) if settings.mqtt_key_file else None,
        keepalive_s=settings.mqtt_keepalive_s,
    )


def build_registry(settings: GatewaySettings) -> Registry:
    return registry_with_dirs(settings.vendor_profile_dirs) if settings.vendor_profile_dirs else default_registry()


async def finish_tasks(tasks: list[asyncio.Task[None]], every_s: float = 0.5) -> None:
    """Cancel ``tasks`` and wait until all have ended, cancelling again every ``every_s``.

    Once is not always enough: a cancel can be swallowed (``asyncio.wait_for`` on Python
    3.11 does so when its awaitable completes at the same moment), and a task that lost its
    cancel would keep the gateway running after SIGTERM. Exceptions are logged, not raised.
    """
    pending = set(tasks)
    while pending:
        for t in pending:
            t.cancel()
        done, pending = await asyncio.wait(pending, timeout=every_s)
        for t in done:
            if not t.cancelled() and t.exception() is not None:
                logger.warning("task_failed_at_stop task=%s error=%r", t.get_name(), t.exception())


@dataclass
class Gateway:
    settings: GatewaySettings
    outbox: Outbox = field(init=False)
    publisher: Publisher = field(init=False)
    started_monotonic: float = field(default_factory=time.monotonic)
    config: GatewayConfig = field(default_factory=GatewayConfig)
    health: dict[str, DeviceHealth] = field(default_factory=dict)
    counters: DecodeCounters = field(default_factory=DecodeCounters)
    backoff: dict[str, DeviceBackoff] = field(default_factory=dict)
    busy: set[str] = field(default_factory=set)
    metrics: Metrics = field(default_factory=Metrics)
    last_reading: dict[str, datetime] = field(default_factory=dict)
    scanner_restarts: int = 0
    adapter_resets: int = 0
    last_advertisement_at: datetime | None = None

    def __post_init__(self) -> None:
        s = self.settings
        self.registry = build_registry(s)
        saved = s.state_dir / "config.json"
        if saved.exists():
            try:
                self.config = GatewayConfig.model_validate_json(saved.read_text())
            except ValueError as err:
                logger.warning("saved_config_invalid error=%s", str(err)[:200])
        self.outbox = Outbox(s.db_path, capacity=s.outbox_capacity)
        # Persisted so a restart does not make every scheduled kind look overdue.
        for kind, at in self.outbox.meta_prefixed(LAST_READING_META).items():
            self.last_reading[kind] = datetime.fromisoformat(at)
        self.publisher = Publisher(
            broker_config(s),
            self.outbox,
            on_config=self._config_received,
            on_ack=self._acked,
            on_feedback=self._feedback_received,
        )
        self.feedback_sink: FeedbackSink = FileFeedbackSink(s.state_dir / "feedback.json")
        # Voice / kiosk / LED, reminders and the receipt fallback: only when outputs are
        # configured; without them the gateway behaves exactly as before they existed.
        self.channel: PatientChannel | None = None
        if s.output_names:
            self.channel = PatientChannel(
                s, self.metrics, schedule=lambda: self.config.schedule, last_reading=lambda: dict(self.last_reading)
            )
            self.outbox.on_added = self.channel.readings_added
        self.ble = BleConfig(
            client_backend=client_backend(s.ble_client_backend),
            connect_attempts=s.ble_connect_attempts,
            backoff_base_s=s.ble_backoff_base_s,
            backoff_cap_s=s.ble_backoff_cap_s,
            idle_timeout_s=s.ble_idle_timeout_s,
            transfer_timeout_s=s.ble_transfer_timeout_s,
            clock_tolerance_s=s.clock_tolerance_s,
            device_tz=ZoneInfo(s.device_timezone),
            patient_user_index=s.patient_user_index,
            resend_window=timedelta(seconds=s.resend_window_s),
        )
        self.outbox.prune_taken(resend_window=self.ble.resend_window)
        self._wakeup = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._full_logged = False
        self.watchdog = ScanWatchdog(
            silence_s=s.ble_scan_watchdog_s,
            reset_after=s.ble_adapter_reset_after,
            reset_min_interval_s=s.ble_adapter_reset_min_interval_s,
            last_heard=time.monotonic(),
        )
        self._scanner_backend = scanner_backend(s.ble_scanner_backend)

    # -- thread-safe pokes -------------------------------------------------------------

    def _wake(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wakeup.set)

    def _acked(self) -> None:
        self.metrics.batches_acked.inc()
        self._wake()

    def _config_received(self, cfg: GatewayConfig) -> None:
        # Paho's thread: a plain attribute swap is atomic for the asyncio side.
        self.config = cfg
        # Kept on disk so a gateway starting without network still knows its devices; the
        # patient feedback is there for a local display/LED service to show.
        path = self.settings.state_dir / "config.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(cfg.model_dump_json(by_alias=True, indent=2))
        tmp.replace(path)
        if cfg.feedback.level != "none":
            logger.warning("patient_feedback level=%s", cfg.feedback.level)

    def _feedback_received(self, msg: FeedbackMessage) -> None:
        # Paho's thread. A stale message (the gateway was offline past its expiry) is not shown:
        # "measure again in 5 minutes" an hour later would mislead.
        now = datetime.now(UTC)
        if msg.expires_at <= now:
            logger.info("feedback_expired id=%s level=%s", msg.id, msg.level)
            self.publisher.publish_feedback_ack(FeedbackAck(id=msg.id, state="expired", at=now))
            return
        try:
            self.feedback_sink.show(msg)
        except OSError as err:
            # An output failing must never stop reading devices; the platform sees no delivery.
            self.metrics.feedback_failures.inc()
            logger.error("feedback_output_failed id=%s error=%s", msg.id, err)
            return
        logger.warning("patient_feedback id=%s level=%s", msg.id, msg.level)
        if self.channel is not None:
            self.channel.platform_message(msg)
        self.publisher.publish_feedback_ack(FeedbackAck(id=msg.id, state="delivered", at=datetime.now(UTC)))

    # -- device admission ---------------------------------------------------------------

    def allowed(self, address: str) -> bool:
        if self.settings.auto_accept:
            return True
        if any(d.address.upper() == address.upper() for d in self.config.allowed_devices):
            return True
        rec = self.outbox.device(address)
        return rec is not None and rec.paired

    def _on_advertisement(self, device: BLEDevice, adv: AdvertisementData, profile: DeviceProfile) -> None:
        addr = device.address
        if addr in self.busy or not self.allowed(addr):
            return
        if self.outbox.full:
            # Leave the readings in the device's memory until the outbox drains.
            if not self._full_logged:
                logger.error("outbox_full depth=%d capacity=%d", self.outbox.depth, self.outbox.capacity)
                self._full_logged = True
            return
        self._full_logged = False
        bo = self.backoff.setdefault(
            addr, DeviceBackoff(base_s=self.settings.ble_backoff_base_s, cap_s=self.settings.ble_backoff_cap_s)
        )
        if not bo.may_connect(time.monotonic()):
            return
        self.busy.add(addr)
        task = asyncio.get_running_loop().create_task(self._session(device, profile, bo))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _session(self, device: BLEDevice, profile: DeviceProfile, bo: DeviceBackoff) -> None:
        addr = device.address
        health = self.health.setdefault(addr, DeviceHealth(addr, profile.display_name[:128], profile.kind.value))
        collector = DeviceCollector(
            device,
            profile,
            cfg=self.ble,
            outbox=self.outbox,
            counters=self.counters,
            health=health,
            on_readings=self._wakeup.set,
        )
        try:
            result = await collector.run()
            health.last_seen_at = datetime.now(UTC)
            self._note_readings(result.last_measured)
            self.outbox.seen(addr, profile.id, health.last_seen_at, health.battery_pct)
            logger.info(
                "ble_session address=%s profile=%s readings=%d duplicates=%d decode_errors=%d complete=%s",
                addr,
                profile.id,
                result.readings,
                result.duplicates,
                result.decode_errors,
                result.complete,
            )
            self.metrics.readings_taken.inc(result.readings)
            self.metrics.readings_duplicate.inc(result.duplicates)
            self.metrics.decode_errors.inc(result.decode_errors)
            self.metrics.sessions.labels("complete" if result.complete else "interrupted").inc()
            if result.complete:
                bo.succeeded(time.monotonic(), self.settings.ble_cooldown_s)
            else:
                # Link lost mid-transfer: come back soon for the rest.
                bo.failed(time.monotonic())
        except GatewayError as err:
            self.metrics.sessions.labels("failed").inc()
            delay = bo.failed(time.monotonic())
            logger.warning("ble_session_failed address=%s error=%s retry_in_s=%.1f", addr, err, delay)
        finally:
            self.busy.discard(addr)

    def _note_readings(self, last_measured: dict[str, datetime]) -> None:
        for kind, at in last_measured.items():
            prev = self.last_reading.get(kind)
            if prev is None or at > prev:
                self.last_reading[kind] = at
                self.outbox.set_meta(LAST_READING_META + kind, at.isoformat())

    def overdue(self, now: datetime | None = None) -> list[str]:
        return overdue_kinds(
            self.config.schedule,
            now or datetime.now(UTC),
            self.last_reading,
            tz=SCHEDULE_TZ,
            grace=timedelta(seconds=self.settings.reminder_grace_s),
            early=timedelta(seconds=self.settings.reminder_early_s),
        )

    # -- status ---------------------------------------------------------------------

    def status(self) -> GatewayStatus:
        assert self.settings.gateway_id is not None
        clock = read_kernel_clock()
        return GatewayStatus(
            gateway_id=self.settings.gateway_id,
            sent_at=datetime.now(UTC),
            version=__version__,
            uptime_s=time.monotonic() - self.started_monotonic,
            outbox_depth=self.outbox.depth,
            outbox_capacity=self.outbox.capacity,
            outbox_full=outbox_alarm(self.outbox.depth, self.outbox.capacity),
            clock_offset_s=clock.offset_s if clock is not None else None,
            clock_synchronised=clock.synchronised if clock is not None else None,
            clock_max_error_s=clock.max_error_s if clock is not None else None,
            overdue_kinds=self.overdue()[:32],
            scanner_restarts=self.scanner_restarts,
            adapter_resets=self.adapter_resets,
            last_advertisement_at=self.last_advertisement_at,
            devices=[
                DeviceStatus(
                    address=h.address,
                    model=h.model,
                    kind=h.kind,
                    last_seen_at=h.last_seen_at,
                    battery_pct=h.battery_pct,
                    decode_errors=self.counters.by_device.get(h.address, 0),
                    clock_offset_s=h.clock_offset_s,
                    clock_unset=h.clock_unset,
                )
                for h in list(self.health.values())[:64]
            ],
        )

    def write_status_file(self) -> None:
        path = self.settings.state_dir / "status.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.status().model_dump_json(by_alias=True, indent=2))
        tmp.replace(path)

    async def _heartbeat(self) -> None:
        while True:
            payload = self.status().model_dump_json(by_alias=True).encode()
            self.publisher.publish_status(payload)
            self.write_status_file()
            self.metrics.outbox_depth.set(self.outbox.depth)
            self.metrics.mqtt_connected.set(1 if self.publisher.connected.is_set() else 0)
            await asyncio.sleep(self.settings.heartbeat_s)

    # -- outbox pump ---------------------------------------------------------------------

    async def _pump(self) -> None:
        window = self.settings.max_inflight_batches
        while True:
            if self.publisher.connected.is_set():
                # Batches assigned earlier (before a restart or a lost session) go first, with
                # their original seq, so the platform sees them in order.
                for seq in self.outbox.unacked_seqs():
                    if self.publisher.inflight >= window:
                        break
                    if not self.publisher.is_sent(seq):
                        self.publisher.publish_batch(self.outbox.load_batch(seq))
                while self.publisher.inflight < window and self.publisher.connected.is_set():
                    batch = self.outbox.next_batch(self.settings.batch_max_readings)
                    if batch is None:
                        break
                    self.publisher.publish_batch(batch)
            self._wakeup.clear()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for drops a cancel that
            # arrives as the wakeup fires, and this loop then never ends (a gateway that
            # ignored SIGTERM, seen once in the benchmark smoke test).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await self._wakeup.wait()

    async def _patient_ticks(self, channel: PatientChannel) -> None:
        while True:
            channel.tick()
            await asyncio.sleep(self.settings.outputs_tick_s)

    # -- scanner watchdog ----------------------------------------------------------------

    def _heard(self) -> None:
        self.watchdog.heard(time.monotonic())
        self.last_advertisement_at = datetime.now(UTC)

    async def _start_scanner(self, scanner: Scanner) -> None:
        try:
            await scanner.start()
        except GatewayError as err:
            # The watchdog tries again (and resets the adapter); device reading resumes then.
            self.watchdog.failed()
            logger.error("ble_scanner_failed error=%s", err)

    async def _watch_scanner(self, scanner: Scanner) -> None:
        period = self.settings.ble_scan_watchdog_s
        if period <= 0:
            return
        while True:
            await asyncio.sleep(min(period / 4, 5.0))
            action = self.watchdog.check(time.monotonic())
            if action is None:
                continue
            if action == "reset":
                self.adapter_resets += 1
                logger.warning("ble_adapter_reset silent_s=%.0f adapter=%s", period, self.settings.ble_adapter)
                await scanner.stop()
                try:
                    await reset_adapter(self._scanner_backend, self.settings.ble_adapter)
                except GatewayError as err:
                    logger.error("ble_adapter_reset_failed error=%s", err)
            else:
                logger.warning("ble_scanner_restart silent_s=%.0f", period)
            self.scanner_restarts += 1
            await scanner.stop()
            await self._start_scanner(scanner)

    # -- run ---------------------------------------------------------------------------

    async def run(self, *, stop: asyncio.Event | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        if self.settings.metrics_port is not None:
            self.metrics.serve(self.settings.metrics_port)
        self.publisher.start()
        scanner = Scanner(self.registry, self._scanner_backend, self._on_advertisement, on_any=self._heard)
        await self._start_scanner(scanner)
        workers = [
            asyncio.create_task(self._pump()),
            asyncio.create_task(self._heartbeat()),
            asyncio.create_task(self._watch_scanner(scanner)),
        ]
        if self.channel is not None:
            workers.append(asyncio.create_task(self._patient_ticks(self.channel)))
        logger.info("gateway_started gateway_id=%s outbox_depth=%d", self.settings.gateway_id, self.outbox.depth)
        try:
            await (stop or self._stopping).wait()
        finally:
            await scanner.stop()
            await finish_tasks([*workers, *self._tasks])
            self.publisher.stop()
            self.write_status_file()
            if self.channel is not None:
                self.channel.close()
            self.outbox.close()

    def request_stop(self) -> None:
        self._stopping.set()
