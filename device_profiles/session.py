"""Per-connection decoding state, as a pure state machine the gateway feeds.

Some measurements need what came before them on the same connection: a CGM time offset
needs the session start time; a glucose measurement flagged "context information
follows" is completed by the Glucose Measurement Context with the same sequence number,
which the meter sends right after it. :class:`DeviceSession` keeps that state; it does
no I/O and is driven directly by tests.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from device_profiles.codecs.cgm import CgmFeature, CgmMeasurement, CgmSessionStartTime
from device_profiles.codecs.common import DEVICE_INFORMATION_STRINGS, BatteryLevel, InfoString
from device_profiles.codecs.glucose import GlucoseMeasurementContext, with_context
from device_profiles.errors import DecodeError
from device_profiles.gatt import Uuid, normalize_uuid
from device_profiles.observation import Observation
from device_profiles.profile import DeviceProfile
from device_profiles.wire import DeviceInfo


class DeviceSession:
    """Feed every value received from one device connection; get observations back."""

    def __init__(self, profile: DeviceProfile, device: DeviceInfo | None = None, *, device_tz: tzinfo = UTC) -> None:
        self.profile = profile
        self.device = device
        self.device_tz = device_tz
        self.session_start: datetime | None = None
        self.battery_pct: int | None = None
        # Device Information strings by field: manufacturer, model, serial, firmware...
        self.info: dict[str, str] = {}
        # Set from CGM Feature: a sensor that supports E2E-CRC must send it on every record.
        self.cgm_crc_required = False
        self._pending: dict[int, Observation] = {}

    def feed(self, char_uuid: str, data: bytes | bytearray, *, received_at: datetime) -> list[Observation]:
        """Decode one value; returns the observations that are complete now.

        Raises DecodeError for malformed bytes (the session state is unchanged then).
        """
        uuid = normalize_uuid(char_uuid)
        raw = bytes(data)
        if uuid == Uuid.CGM_SESSION_START_TIME:
            self.session_start = CgmSessionStartTime.from_bytes(raw).to_datetime(self.device_tz)
            return []
        if uuid == Uuid.CGM_FEATURE:
            self.cgm_crc_required = CgmFeature.from_bytes(raw).e2e_crc_supported
            return []
        # A record without its CRC from a sensor that protects them is not trusted.
        if (
            uuid == Uuid.CGM_MEASUREMENT
            and self.cgm_crc_required
            and not all(r.with_crc for r in CgmMeasurement.from_bytes(raw).records)
        ):
            raise DecodeError("E2E-CRC missing although the sensor supports it", raw, characteristic=uuid)
        if uuid == Uuid.BATTERY_LEVEL:
            self.battery_pct = BatteryLevel.from_bytes(raw).percent
            return []
        if uuid in DEVICE_INFORMATION_STRINGS:
            self.info[DEVICE_INFORMATION_STRINGS[uuid]] = InfoString.from_bytes(raw).text
            return []
        if uuid == Uuid.GLUCOSE_MEASUREMENT_CONTEXT:
            ctx = GlucoseMeasurementContext.from_bytes(raw)
            obs = self._pending.pop(ctx.sequence, None)
            return [] if obs is None else [with_context(obs, ctx)]
        decoded = self.profile.decode(
            uuid,
            raw,
            received_at=received_at,
            device=self.device,
            device_tz=self.device_tz,
            session_start=self.session_start,
        )
        out: list[Observation] = []
        for obs in decoded:
            # The context follows its measurement immediately (Glucose Service §3.6.1), so
            # any measurement still waiting when the next one arrives gets none.
            out.extend(self._pending.values())
            self._pending.clear()
            if obs.extras.get("context_follows") and obs.sequence is not None:
                self._pending[obs.sequence] = obs
            else:
                out.append(obs)
        return out

    def flush(self) -> list[Observation]:
        """Measurements still waiting for a context (call on disconnect / end of transfer)."""
        out = list(self._pending.values())
        self._pending.clear()
        return out

    def device_info(self, address: str, model: str | None = None) -> DeviceInfo:
        """The wire DeviceInfo from what was read (Device Information, Battery)."""
        return DeviceInfo(
            address=address,
            model=model or self.info.get("model") or self.profile.display_name[:128],
            serial=self.info.get("serial"),
            firmware=self.info.get("firmware"),
            battery_pct=self.battery_pct,
        )
