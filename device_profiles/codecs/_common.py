"""Small helpers shared by the codecs."""

from __future__ import annotations

from datetime import datetime

from device_profiles.errors import DecodeError
from device_profiles.gatt import DateTime
from device_profiles.observation import DecodeContext


def need(data: bytes, size: int, what: str, char: str) -> None:
    """Raise DecodeError unless ``data`` is exactly ``size`` bytes long."""
    if len(data) != size:
        if len(data) < size:
            raise DecodeError(f"truncated: {what} needs {size} bytes, got {len(data)}", data, characteristic=char)
        raise DecodeError(f"trailing bytes: {what} is {size} bytes, got {len(data)}", data, characteristic=char)


def reserved_flags(data: bytes, flags: int, mask: int, char: str) -> None:
    if flags & mask:
        # A flag bit the specification reserves may announce a field we cannot know the
        # size of; decoding around it would risk a wrong reading.
        raise DecodeError(f"reserved flag bits set (0x{flags & mask:x})", data, characteristic=char)


def device_time(ts: DateTime | None, ctx: DecodeContext) -> tuple[datetime | None, bool]:
    """(device time in UTC or None, clock looked unset)."""
    if ts is None:
        return None, False
    return ts.to_datetime(ctx.device_tz), ts.clock_unset


def bool_flags(bits: int, table: dict[int, str]) -> set[str]:
    return {name for bit, name in table.items() if bits & bit}
