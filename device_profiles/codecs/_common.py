"""Small helpers shared by the codecs."""

from __future__ import annotations

from datetime import datetime

from device_profiles.gatt import DateTime
from device_profiles.observation import DecodeContext


def device_time(ts: DateTime | None, ctx: DecodeContext) -> tuple[datetime | None, bool]:
    """(device time in UTC or None, whether the device clock looked unset)."""
    if ts is None:
        return None, False
    return ts.to_datetime(ctx.device_tz), ts.clock_unset
