"""BLE through bleak's public API: scanning, connecting with backoff, one session per device.

The bleak backend classes come from configuration (a dotted path loaded with importlib),
so the same code runs over BlueZ on a Raspberry Pi and over the simulators' virtual radio
in tests. Decisions (backoff, what to fetch, clock handling) are in :mod:`gateway.logic`.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakError
from bleak_retry_connector import establish_connection

from device_profiles.codecs.common import CurrentTime
from device_profiles.codecs.racp import RacpResponse, parse_racp_response
from device_profiles.errors import DecodeError
from device_profiles.gatt import Uuid
from device_profiles.observation import Observation, has_device_identity, to_reading
from device_profiles.profile import DeviceProfile, Registry, Role
from device_profiles.session import DeviceSession
from device_profiles.wire import Reading
from gateway.errors import GatewayError
from gateway.logic import (
    ClockAssessment,
    DecodeCounters,
    DeviceBackoff,
    assess_clock,
    racp_request_for,
)
from gateway.outbox import DEFAULT_RESEND_WINDOW, ContentKey, Outbox, content_key

logger = logging.getLogger(__name__)


def load_class(dotted: str) -> type[Any]:
    """``package.module:Class`` or ``package.module.Class``."""
    module_name, _, attr = dotted.partition(":") if ":" in dotted else dotted.rpartition(".")
    if not module_name or not attr:
        raise GatewayError(f"not a dotted class path: {dotted!r}")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise GatewayError(f"cannot load {dotted!r}: {err}") from err
    if not isinstance(cls, type):
        raise GatewayError(f"{dotted!r} is not a class")
    return cls


def scanner_backend(dotted: str) -> type[BaseBleakScanner] | None:
    return load_class(dotted) if dotted else None


def client_backend(dotted: str) -> type[BaseBleakClient] | None:
    return load_class(dotted) if dotted else None


@dataclass
class DeviceHealth:
    """What the status reports per device."""

    address: str
    model: str
    kind: str
    last_seen_at: datetime | None = None
    battery_pct: int | None = None
    decode_errors: int = 0
    # Device clock minus gateway clock at the last Current Time read (before setting it).
    clock_offset_s: float | None = None
    clock_unset: bool | None = None


@dataclass
class SessionResult:
    readings: int = 0
    duplicates: int = 0
    decode_errors: int = 0
    complete: bool = False
    clock: ClockAssessment | None = None
    # Latest measured_at per kind among the readings stored (for the schedule reminders).
    last_measured: dict[str, datetime] = field(default_factory=dict)


@dataclass
class BleConfig:
    client_backend: type[BaseBleakClient] | None
    connect_attempts: int = 4
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 60.0
    idle_timeout_s: float = 5.0
    transfer_timeout_s: float = 120.0
    clock_tolerance_s: float = 120.0
    device_tz: tzinfo = UTC
    # The patient's User ID on shared devices (BLS/WSS User ID), unless the device record says otherwise.
    patient_user_index: int = 1
    resend_window: timedelta = DEFAULT_RESEND_WINDOW


async def connect_with_retries(
    device: BLEDevice,
    *,
    cfg: BleConfig,
    pair: bool,
    disconnected: Callable[[BleakClient], None],
) -> BleakClient:
    """Connect through bleak-retry-connector's ``establish_connection``.

    It retries with its own short backoff and, on BlueZ, clears stale D-Bus state between
    attempts; the configured backend class reaches ``BleakClient`` through its keyword
    arguments, so the same call runs over the virtual radio in tests. Retries of whole
    sessions (a device that keeps failing) use :class:`gateway.logic.DeviceBackoff`.
    """
    extra: dict[str, Any] = {} if cfg.client_backend is None else {"backend": cfg.client_backend}
    try:
        client: BleakClient = await establish_connection(
            BleakClient,
            device,
            device.name or device.address,
            disconnected_callback=disconnected,
            max_attempts=cfg.connect_attempts,
            pair=pair,
            **extra,
        )
    except (BleakError, TimeoutError, OSError) as err:
        raise GatewayError(f"could not connect: {err}") from err
    return client


class DeviceCollector:
    """One connection to one device: read, set clock, subscribe, collect, disconnect."""

    def __init__(
        self,
        device: BLEDevice,
        profile: DeviceProfile,
        *,
        cfg: BleConfig,
        outbox: Outbox,
        counters: DecodeCounters,
        health: DeviceHealth,
        on_readings: Callable[[], None] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.device = device
        self.profile = profile
        self.cfg = cfg
        self.outbox = outbox
        self.counters = counters
        self.health = health
        self.on_readings = on_readings
        self.now = now
        self.session = DeviceSession(profile, device_tz=cfg.device_tz)
        self.result = SessionResult()
        self._lost = asyncio.Event()
        self._activity = asyncio.Event()
        self._racp_done: asyncio.Future[RacpResponse] | None = None
        self._clock: ClockAssessment | None = None
        known = outbox.device(device.address)
        self.patient_user_index = (
            known.user_index if known is not None and known.user_index is not None else cfg.patient_user_index
        )
        # Values without time stamp or sequence seen in this connection, by content key, and
        # whether the connection is still in its opening run of resends (outbox.ContentKey).
        self._occurrences: dict[str, int] = {}
        self._resending = True

    async def run(self) -> SessionResult:
        client = await connect_with_retries(
            self.device, cfg=self.cfg, pair=self.profile.needs_bonding, disconnected=lambda _c: self._lost.set()
        )
        try:
            await self._collect(client)
        except (BleakError, TimeoutError) as err:
            if not self._lost.is_set():
                raise GatewayError(f"BLE error: {err}") from err
            logger.info("ble_link_lost address=%s readings=%d", self.device.address, self.result.readings)
        finally:
            self._store(self.session.flush())
            if client.is_connected:
                await client.disconnect()
        return self.result

    def _has(self, client: BleakClient, uuid: str) -> bool:
        return client.services.get_characteristic(uuid) is not None

    async def _collect(self, client: BleakClient) -> None:
        # 1. Reads: Device Information, battery, CGM session start.
        for spec in self.profile.reads:
            if self._has(client, spec.uuid):
                try:
                    data = await client.read_gatt_char(spec.uuid)
                except BleakError as err:
                    if not spec.optional or self._lost.is_set():
                        raise
                    logger.info(
                        "ble_optional_read_failed address=%s uuid=%s error=%s", self.device.address, spec.uuid, err
                    )
                    continue
                self._feed(spec.uuid, data)
        self.health.battery_pct = self.session.battery_pct
        # 2. Clock: measure skew before setting it, so records taken earlier get corrected.
        clock_spec = self.profile.characteristic(Role.CLOCK)
        if clock_spec is not None and self._has(client, clock_spec.uuid):
            self._clock = await self._check_clock(client)
            # Reported in the status so staff can see a device whose clock drifts.
            self.health.clock_unset = self._clock.unset
            self.health.clock_offset_s = self._clock.offset.total_seconds() if self._clock.offset is not None else None
            if self.profile.set_clock:
                now = self.now()
                await client.write_gatt_char(
                    Uuid.CURRENT_TIME, bytes(CurrentTime.at(now, self.cfg.device_tz)), response=True
                )
        self.result.clock = self._clock
        # 3. Subscribe (measurement characteristics, context, RACP).
        for spec in self.profile.subscriptions:
            if not self._has(client, spec.uuid):
                if not spec.optional:
                    raise GatewayError(f"device lacks required characteristic {spec.uuid}")
                continue
            await client.start_notify(spec.uuid, self._make_callback(spec.uuid))
        # 4. Fetch: RACP for stored records, otherwise wait for pushed values to stop.
        racp = self.profile.characteristic(Role.RACP)
        if self.profile.uses_racp and racp is not None and self._has(client, racp.uuid):
            known = self.outbox.device(self.device.address)
            request = racp_request_for(known.last_sequence if known else None)
            loop = asyncio.get_running_loop()
            self._racp_done = loop.create_future()
            await client.write_gatt_char(racp.uuid, bytes(request), response=True)
            await self._wait_for(self._racp_done, self.cfg.transfer_timeout_s)
            self.result.complete = self._racp_done.done() and not self._lost.is_set()
        else:
            await self._wait_idle()
            self.result.complete = not self._lost.is_set()

    async def _check_clock(self, client: BleakClient) -> ClockAssessment:
        try:
            raw = await client.read_gatt_char(Uuid.CURRENT_TIME)
            device_time = CurrentTime.from_bytes(bytes(raw)).to_datetime(self.cfg.device_tz)
        except (BleakError, DecodeError) as err:
            logger.info("device_clock_unreadable address=%s error=%s", self.device.address, err)
            device_time = None
        return assess_clock(device_time, self.now(), tolerance_s=self.cfg.clock_tolerance_s)

    async def _wait_for(self, fut: asyncio.Future[Any], limit_s: float) -> None:
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait({fut, lost}, timeout=limit_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()

    async def _wait_idle(self) -> None:
        deadline = time.monotonic() + self.cfg.transfer_timeout_s
        while not self._lost.is_set() and time.monotonic() < deadline:
            self._activity.clear()
            try:
                # asyncio.timeout: wait_for on 3.11 can drop a cancel (gateway.service.finish_tasks).
                async with asyncio.timeout(self.cfg.idle_timeout_s):
                    await self._activity.wait()
            except TimeoutError:
                return

    def _make_callback(self, uuid: str) -> Callable[[Any, bytearray], None]:
        # Synchronous on purpose: bleak calls it for every indication/notification, and the
        # reading is committed (fsynced) to the outbox before it returns. A transport that
        # confirms an indication when the callback has returned (the virtual radio does) so
        # never has a device forget a value the outbox does not hold. BlueZ confirms in
        # bluetoothd as it receives the value (gateway/README.md, "Indications").
        def on_value(_char: Any, data: bytearray) -> None:
            self._activity.set()
            if uuid == Uuid.RECORD_ACCESS_CONTROL_POINT:
                self._on_racp(bytes(data))
                return
            self._store(self._feed(uuid, data))

        return on_value

    def _on_racp(self, data: bytes) -> None:
        try:
            resp = parse_racp_response(data)
        except DecodeError as err:
            self._decode_error(err, Uuid.RECORD_ACCESS_CONTROL_POINT)
            return
        if isinstance(resp, RacpResponse) and self._racp_done is not None and not self._racp_done.done():
            logger.info("racp_done address=%s code=%s", self.device.address, resp.code.name)
            self._racp_done.set_result(resp)

    def _feed(self, uuid: str, data: bytes | bytearray) -> list[Observation]:
        try:
            return self.session.feed(uuid, data, received_at=self.now())
        except DecodeError as err:
            self._decode_error(err, uuid)
            return []

    def _decode_error(self, err: DecodeError, uuid: str) -> None:
        n = self.counters.count(self.device.address)
        self.health.decode_errors = n
        self.result.decode_errors += 1
        self.outbox.reject(self.device.address, uuid, err.reason, err.raw, self.now())
        logger.warning(
            "decode_error address=%s characteristic=%s reason=%s raw=%s count=%d",
            self.device.address,
            uuid,
            err.reason,
            err.raw.hex()[:128],
            n,
        )

    def _store(self, observations: list[Observation]) -> None:
        if not observations:
            return
        info = self.session.device_info(self.device.address)
        readings: list[Reading] = []
        content: list[ContentKey | None] = []
        last_seq: int | None = None
        for obs in observations:
            try:
                readings.append(self._reading(obs, info))
            except DecodeError as err:
                self._decode_error(err, obs.characteristic or "")
                continue
            content.append(None if has_device_identity(obs) else self._content_key(obs, info.serial))
            if obs.sequence is not None:
                last_seq = obs.sequence if last_seq is None else max(last_seq, obs.sequence)
        seq_for_state = last_seq if self.profile.uses_racp else None
        res = self.outbox.add(
            readings,
            address=self.device.address,
            last_sequence=seq_for_state,
            content=content,
            resend_window=self.cfg.resend_window,
        )
        for r in readings:
            prev = self.result.last_measured.get(r.kind.value)
            if prev is None or r.measured_at > prev:
                self.result.last_measured[r.kind.value] = r.measured_at
        if res.new_by_content:
            self._resending = False
        self.result.readings += res.added
        self.result.duplicates += res.duplicates
        if self.on_readings and res.added:
            self.on_readings()

    def _content_key(self, obs: Observation, serial: str | None) -> ContentKey:
        key = content_key(serial or self.device.address, obs.kind.value, obs.raw)
        n = self._occurrences.get(key, 0) + 1
        self._occurrences[key] = n
        return ContentKey(key, n, may_be_resend=self._resending)

    def _reading(self, obs: Observation, info: Any) -> Reading:
        clock = self._clock
        extra: frozenset[str] = frozenset()
        if self.session.battery_pct is not None and self.session.battery_pct <= 15:
            extra = frozenset({"low_battery"})
        offset: timedelta | None = None
        if clock is not None and clock.correct and clock.offset is not None and not obs.clock_unset:
            offset = clock.offset
        return to_reading(obs, info, clock_offset=offset, extra_flags=extra, patient_user_index=self.patient_user_index)


@dataclass
class Scanner:
    """Scan with service-UUID filters and hand matching advertisements to a callback."""

    registry: Registry
    backend: type[BaseBleakScanner] | None
    on_device: Callable[[BLEDevice, AdvertisementData, DeviceProfile], None]
    # Called for every advertisement heard (the watchdog's sign of life).
    on_any: Callable[[], None] | None = None
    _scanner: BleakScanner | None = field(default=None, init=False)

    def service_uuids(self) -> list[str]:
        return sorted({u for p in self.registry.profiles for u in p.service_uuids})

    def _detected(self, device: BLEDevice, adv: AdvertisementData) -> None:
        if self.on_any is not None:
            self.on_any()
        profile = self.registry.match(adv.service_uuids, adv.local_name or device.name, adv.manufacturer_data)
        if profile is not None:
            self.on_device(device, adv, profile)

    async def start(self) -> None:
        scanner = BleakScanner(self._detected, service_uuids=self.service_uuids(), backend=self.backend)
        try:
            await scanner.start()
        except (BleakError, OSError) as err:
            raise GatewayError(f"Bluetooth scanner did not start: {err}") from err
        self._scanner = scanner

    async def stop(self) -> None:
        scanner, self._scanner = self._scanner, None
        if scanner is not None:
            try:
                await scanner.stop()
            except (BleakError, OSError) as err:
                logger.warning("ble_scanner_stop_failed error=%s", err)

    async def restart(self) -> None:
        await self.stop()
        await self.start()


async def discover(
    registry: Registry, backend: type[BaseBleakScanner] | None, seconds: float
) -> list[tuple[BLEDevice, AdvertisementData, DeviceProfile]]:
    found: dict[str, tuple[BLEDevice, AdvertisementData, DeviceProfile]] = {}

    def seen(d: BLEDevice, a: AdvertisementData, p: DeviceProfile) -> None:
        found[d.address] = (d, a, p)

    sc = Scanner(registry, backend, seen)
    await sc.start()
    try:
        await asyncio.sleep(seconds)
    finally:
        await sc.stop()
    return list(found.values())


__all__ = ["DeviceBackoff", "DeviceCollector", "Scanner", "discover", "load_class"]
