"""Small helpers shared by the codecs."""

from __future__ import annotations

import struct
from datetime import datetime
from typing import Any

from device_profiles.errors import DecodeError
from device_profiles.gatt import DateTime
from device_profiles.observation import DecodeContext


def device_time(ts: DateTime | None, ctx: DecodeContext) -> tuple[datetime | None, bool]:
    """(device time in UTC or None, whether the device clock looked unset)."""
    if ts is None:
        return None, False
    return ts.to_datetime(ctx.device_tz), ts.clock_unset


def unpack_flagged(
    data: bytes, reserved_mask: int, layouts: tuple[struct.Struct, ...], name: str
) -> tuple[int, tuple[Any, ...]]:
    """Check a flags-first value against the layout its flags announce and unpack it.

    Every SIG measurement whose fields are switched on by the first octet's flag bits
    starts the same way: an empty value, reserved flag bits and a length that differs
    from what the flags announce are all decode errors, never a partial reading.
    """
    if not data:
        raise DecodeError("empty value", data, characteristic=name)
    flags = data[0]
    if flags & reserved_mask:
        raise DecodeError(f"reserved flag bits set (0x{flags & reserved_mask:x})", data, characteristic=name)
    layout = layouts[flags]
    if len(data) != layout.size:
        what = "truncated" if len(data) < layout.size else "trailing bytes"
        raise DecodeError(
            f"{what}: flags 0x{flags:02x} announce {layout.size} bytes, got {len(data)}", data, characteristic=name
        )
    return flags, layout.unpack(data)
