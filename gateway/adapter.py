"""Resetting the Bluetooth adapter when the scanner watchdog asks for it.

bleak has no adapter API, so this is the one place the gateway talks to BlueZ itself: it
power-cycles the adapter through BlueZ's D-Bus interface (``org.bluez.Adapter1.Powered``
off, then on), with the dbus-fast library bleak itself uses on Linux. A bleak backend class
may offer its own ``reset_adapter()`` coroutine (the simulators' virtual radio does); it is
used instead, so tests exercise the same path.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from gateway import GatewayError

logger = logging.getLogger(__name__)

BLUEZ = "org.bluez"
ADAPTER_IFACE = "org.bluez.Adapter1"
POWER_OFF_S = 1.0


class BluetoothUnavailableError(GatewayError):
    """No Bluetooth stack to talk to (bluetoothd not running, no adapter, no D-Bus)."""


async def reset_adapter(scanner_backend: type[Any] | None, adapter: str = "hci0") -> None:
    """Power-cycle ``adapter``; raises GatewayError when that is not possible."""
    own = getattr(scanner_backend, "reset_adapter", None)
    if own is not None:
        await own()
        return
    try:
        from dbus_fast import BusType, Variant  # noqa: PLC0415 - Linux only, with bleak's BlueZ backend
        from dbus_fast.aio import MessageBus  # noqa: PLC0415
    except ImportError as err:
        raise BluetoothUnavailableError(f"cannot reset {adapter}: dbus-fast is not installed") from err
    try:
        bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    except (OSError, ValueError) as err:
        raise BluetoothUnavailableError(f"cannot reset {adapter}: no system D-Bus ({err})") from err
    try:
        path = f"/org/bluez/{adapter}"
        intro = await bus.introspect(BLUEZ, path)
        props = bus.get_proxy_object(BLUEZ, path, intro).get_interface("org.freedesktop.DBus.Properties")
        await props.call_set(ADAPTER_IFACE, "Powered", Variant("b", False))  # type: ignore[attr-defined]
        await asyncio.sleep(POWER_OFF_S)
        await props.call_set(ADAPTER_IFACE, "Powered", Variant("b", True))  # type: ignore[attr-defined]
    except Exception as err:  # dbus-fast raises DBusError and friends; all mean "could not"
        raise BluetoothUnavailableError(f"cannot reset {adapter}: {err}") from err
    finally:
        bus.disconnect()
    logger.warning("bluetooth_adapter_reset adapter=%s", adapter)
