"""The virtual radio: the set of virtual devices the simulated bleak backend can see.

One radio per process (``process_radio.default_radio``). The scanner asks it for advertisements; a
client opens a :class:`Link` to one device, through which values flow in both directions.
Indications are delivered as tasks on the event loop, one value per loop turn, like a real
stack delivering them from its own thread into the loop; each is confirmed to the device
when the collector's callback has returned (:meth:`VirtualDevice.confirmed`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from simulators.ble.devices import VirtualDevice
from simulators.errors import VirtualDeviceError

logger = logging.getLogger(__name__)


@dataclass
class Link:
    device: VirtualDevice
    on_disconnect: Callable[[], None]
    subscriptions: dict[str, Callable[[bytearray], None]] = field(default_factory=dict)
    connected: bool = True
    _sender: asyncio.Task[None] | None = None
    _queue: asyncio.Queue[tuple[str, bytes]] = field(default_factory=asyncio.Queue)

    def send(self, values: list[tuple[str, bytes]]) -> None:
        for v in values:
            self._queue.put_nowait(v)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        dev = self.device
        while self.connected and not self._queue.empty():
            uuid, data = self._queue.get_nowait()
            if dev.garbage and uuid in self.subscriptions:
                junk = dev.garbage.popleft()
                self.subscriptions[uuid](bytearray(junk))
                await asyncio.sleep(0)
            if dev.drop_after is not None:
                if dev.drop_after <= 0:
                    dev.drop_after = None
                    # Link loss mid-transfer: the rest of this transfer never arrives;
                    # unsent values stay with the device (pushed ones go back to pending).
                    self._requeue(uuid, data)
                    while not self._queue.empty():
                        self._requeue(*self._queue.get_nowait())
                    self.drop()
                    return
                dev.drop_after -= 1
            cb = self.subscriptions.get(uuid)
            if cb is None:
                logger.debug("sim_value_dropped_not_subscribed uuid=%s", uuid)
                continue
            dev.sent_values += 1
            dev.sent_by_uuid[uuid] = dev.sent_by_uuid.get(uuid, 0) + 1
            cb(bytearray(data))
            # The confirmation goes back once the collector's callback has returned (as a
            # client that confirms after handling the value); only then does the device
            # consider the value delivered.
            dev.confirmed(uuid, data)
            await asyncio.sleep(0)

    def _requeue(self, uuid: str, data: bytes) -> None:
        if uuid in {s.uuid for s in self.device.profile.characteristics}:
            self.device.keep_unsent(uuid, data)

    def drop(self) -> None:
        if not self.connected:
            return
        self.connected = False
        self.device.advertising = True
        self.device.link_lost()
        logger.info("sim_link_lost address=%s", self.device.address)
        self.on_disconnect()

    def close(self) -> None:
        self.connected = False
        if self._sender is not None:
            self._sender.cancel()


class VirtualRadio:
    def __init__(self) -> None:
        self.devices: dict[str, VirtualDevice] = {}
        self.links: dict[str, Link] = {}
        self.advertisements = 0
        # Adapter faults (the Raspberry Pi's): "restart" = discovery hears nothing until it is
        # restarted, "reset" = until the adapter is reset; scan_start_errors = that many
        # scanner starts fail (as BlueZ's "org.bluez.Error.NotReady") until a reset.
        self.silent_until: str | None = None
        self.scan_start_errors = 0
        self.scanner_starts = 0
        self.adapter_resets = 0

    def scanner_started(self) -> None:
        """A discovery starts (raises VirtualDeviceError for an adapter that errors)."""
        if self.scan_start_errors > 0:
            self.scan_start_errors -= 1
            raise VirtualDeviceError("org.bluez.Error.NotReady: Resource Not Ready")
        self.scanner_starts += 1
        if self.silent_until == "restart" and self.scanner_starts > 1:
            self.silent_until = None

    def reset_adapter(self) -> None:
        self.adapter_resets += 1
        self.silent_until = None
        self.scan_start_errors = 0

    def add(self, device: VirtualDevice) -> VirtualDevice:
        self.devices[device.address.upper()] = device
        return device

    def remove(self, address: str) -> None:
        self.devices.pop(address.upper(), None)

    def clear(self) -> None:
        self.devices.clear()
        self.links.clear()

    def get(self, address: str) -> VirtualDevice:
        try:
            return self.devices[address.upper()]
        except KeyError:
            raise VirtualDeviceError(f"no virtual device {address}") from None

    def release_due(self, now: datetime | None = None) -> int:
        """Let every device take the scheduled measurements whose time has come."""
        return sum(d.release_due(now) for d in list(self.devices.values()))

    def advertising(self) -> list[VirtualDevice]:
        return [d for d in self.devices.values() if d.advertising and d.address.upper() not in self.links]

    def connect(self, address: str, on_disconnect: Callable[[], None]) -> Link:
        dev = self.get(address)
        if address.upper() in self.links:
            raise VirtualDeviceError(f"{address} is already connected")
        dev.connections += 1
        link = Link(dev, on_disconnect)
        self.links[address.upper()] = link
        return link

    def disconnect(self, address: str) -> None:
        link = self.links.pop(address.upper(), None)
        if link is not None:
            link.close()
