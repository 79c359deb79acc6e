"""bleak backend classes whose radio is the virtual one (DESIGN.md, "BLE in tests").

``BleakScanner(backend=VirtualScanner)`` and ``BleakClient(device, backend=VirtualClient)``
behave like bleak on real hardware: advertisements arrive through the detection callback
with their service UUIDs, characteristics are discovered on connect, notifications and
indications arrive through ``start_notify`` callbacks, and a lost link calls the
disconnected callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError

from simulators.ble.devices import VirtualDevice
from simulators.ble.process_radio import default_radio
from simulators.ble.radio import Link
from simulators.errors import VirtualDeviceError

logger = logging.getLogger(__name__)

ADVERTISING_INTERVAL_S = 0.1
MTU = 185


class VirtualScanner(BaseBleakScanner):
    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def reset_adapter(cls) -> None:
        """What the gateway's watchdog calls instead of power-cycling a BlueZ adapter."""
        await asyncio.sleep(0)
        default_radio().reset_adapter()

    async def start(self) -> None:
        try:
            default_radio().scanner_started()
        except VirtualDeviceError as err:
            raise BleakError(str(err)) from err
        self.seen_devices = {}
        self._task = asyncio.get_running_loop().create_task(self._advertise())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _advertise(self) -> None:
        radio = default_radio()
        while True:
            # The devices' own time passes too: scheduled measurements are taken (and
            # advertised) once their time has come.
            radio.release_due()
            # A hung adapter: the devices advertise, nothing reaches the host.
            for dev in [] if radio.silent_until else radio.advertising():
                services = list(dev.profile.service_uuids)
                if not self.is_allowed_uuid(services):
                    continue
                adv = AdvertisementData(
                    local_name=dev.name,
                    manufacturer_data={},
                    service_data={},
                    service_uuids=services,
                    tx_power=None,
                    rssi=-60,
                    platform_data=(dev.address,),
                )
                device = self.create_or_update_device(dev.address, dev.address, dev.name, dev, adv)
                radio.advertisements += 1
                self.call_detection_callbacks(device, adv)
            await asyncio.sleep(ADVERTISING_INTERVAL_S)


class VirtualClient(BaseBleakClient):
    def __init__(self, address_or_ble_device: BLEDevice | str, **kwargs: Any) -> None:
        super().__init__(
            address_or_ble_device,
            disconnected_callback=kwargs.pop("disconnected_callback", None),
            timeout=kwargs.pop("timeout", 10.0),
        )
        self._link: Link | None = None
        self._chars: dict[str, BleakGATTCharacteristic] = {}

    @property
    def name(self) -> str:
        return default_radio().get(self.address).name

    @property
    def mtu_size(self) -> int:
        return MTU

    @property
    def is_connected(self) -> bool:
        return self._link is not None and self._link.connected

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        radio = default_radio()
        try:
            dev = radio.get(self.address)
            if not dev.advertising:
                raise BleakError(f"Device with address {self.address} was not found")
            if dev.refuse_connections > 0:
                dev.refuse_connections -= 1
                raise BleakError("le-connection-abort-by-local")
            self._link = radio.connect(self.address, self._lost)
        except VirtualDeviceError as err:
            raise BleakError(str(err)) from err
        try:
            self._discover(dev, pair)
        except BaseException:
            radio.disconnect(self.address)
            self._link = None
            raise
        await asyncio.sleep(0)

    def _discover(self, dev: VirtualDevice, pair: bool) -> None:
        if pair:
            dev.bonded = True
        services = BleakGATTServiceCollection()
        by_service: dict[str, BleakGATTService] = {}
        handle = 1
        for ch in dev.characteristics():
            svc = by_service.get(ch.service_uuid)
            if svc is None:
                svc = BleakGATTService(None, handle, ch.service_uuid)
                handle += 1
                by_service[ch.service_uuid] = svc
                services.add_service(svc)
            char = BleakGATTCharacteristic(None, handle, ch.uuid, ch.properties, lambda: MTU - 3, svc)  # type: ignore[arg-type]
            handle += 1
            services.add_characteristic(char)
            self._chars[ch.uuid] = char
        self.services = services

    def _lost(self) -> None:
        default_radio().disconnect(self.address)
        self._link = None
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self) -> None:
        link, self._link = self._link, None
        if link is None:
            return
        link.connected = False
        default_radio().disconnect(self.address)
        dev = link.device
        dev.transfer_done()
        await asyncio.sleep(0)
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        default_radio().get(self.address).bonded = True

    async def unpair(self) -> None:
        default_radio().get(self.address).bonded = False

    def _require(self) -> Link:
        if self._link is None or not self._link.connected:
            raise BleakError("Not connected")
        return self._link

    def _check_security(self, link: Link) -> None:
        if link.device.profile.needs_bonding and not link.device.bonded:
            # ATT "Insufficient Authentication": the device only talks to a bonded collector.
            raise BleakError("Insufficient Authentication (0x05)")

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        link = self._require()
        await asyncio.sleep(0)
        try:
            return bytearray(link.device.read(characteristic.uuid))
        except VirtualDeviceError as err:
            raise BleakError(str(err)) from err

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        raise BleakError("the virtual devices have no readable descriptors")

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data: Any, response: bool) -> None:
        link = self._require()
        self._check_security(link)
        try:
            replies = link.device.write(characteristic.uuid, bytes(data))
        except (VirtualDeviceError, ValueError) as err:
            raise BleakError(str(err)) from err
        await asyncio.sleep(0)
        if replies:
            link.send(replies)

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
        raise BleakError("write the characteristic; CCCDs are handled by start_notify")

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        link = self._require()
        self._check_security(link)
        link.subscriptions[characteristic.uuid] = callback
        await asyncio.sleep(0)
        pushed = link.device.on_subscribed(characteristic.uuid)
        if pushed:
            link.send(pushed)

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        if self._link is not None:
            self._link.subscriptions.pop(characteristic.uuid, None)
