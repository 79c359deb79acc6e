"""Virtual health devices that speak the exact GATT bytes of the real ones.

Each device exposes the services and characteristics of its device_profiles profile and
encodes its measurements with device_profiles' encoders, so what the gateway decodes is
byte-for-byte what a real device of that type sends. Faults are switches on the device:
link loss after N values, garbage bytes, resent old records, an unset clock, low battery.
"""

from __future__ import annotations

import json
import os
import random
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from device_profiles.codecs.blood_pressure import BloodPressureMeasurement
from device_profiles.codecs.cgm import CgmFeature, CgmMeasurement, CgmRecord, CgmSessionStartTime
from device_profiles.codecs.common import BatteryLevel, CurrentTime, InfoString
from device_profiles.codecs.glucose import GlucoseMeasurement
from device_profiles.codecs.pulse_oximeter import PlxSpotCheck
from device_profiles.codecs.racp import RacpNumberOfRecords, RacpOpCode, RacpRequest, RacpResponse, RacpResponseCode
from device_profiles.codecs.thermometer import TemperatureMeasurement
from device_profiles.codecs.weight import WeightMeasurement
from device_profiles.gatt import DateTime, Uuid
from device_profiles.profile import DeviceProfile, Mode, Role
from device_profiles.registry import get_profile
from device_profiles.vendor import packaged_profile_texts, vendor_codec
from simulators.errors import VirtualDeviceError

STOCKHOLM = ZoneInfo("Europe/Stockholm")
PF100_PROFILE_FILE = "example_pf100.toml"
PF100_MEASUREMENT = "6e4a0002-3c1d-4b8e-9a57-1f2e3d4c5b6a"

# Glucose in the Glucose Measurement is kg/L: 1 mg/dL = 1e-5 kg/L (Glucose Service §3.1.1.3).
KG_PER_L_PER_MG_DL = 1e-5


# What a device does with a measurement once the collector has confirmed it (the ATT
# Handle Value Confirmation of its indication, or the delivery of a notification):
# "forget" it (most cuffs, scales and oximeters: nothing is sent twice) or "keep" it and
# send its whole memory again on every connection (many cuffs with a memory).
Memory = Literal["forget", "keep"]


# The Device Information strings the virtual devices carry (a real device has a subset too).
_INFO_STRINGS = frozenset(
    {Uuid.MANUFACTURER_NAME, Uuid.MODEL_NUMBER, Uuid.SERIAL_NUMBER, Uuid.FIRMWARE_REVISION, Uuid.HARDWARE_REVISION}
)


@dataclass
class Characteristic:
    uuid: str
    service_uuid: str
    properties: list[str]


@dataclass
class VirtualDevice:
    """One device. ``pending`` holds values it indicates/notifies once subscribed."""

    address: str
    name: str
    profile: DeviceProfile
    serial: str = "SIM-0001"
    model: str = "Simulated"
    firmware: str = "1.0"
    battery_pct: int = 90
    device_tz: tzinfo = STOCKHOLM
    # Device clock minus true time; None = the clock was never set (reads as year 2000).
    clock_offset: timedelta | None = timedelta(0)
    bonded: bool = False
    advertising: bool = False
    # Faults: drop the link after this many more values; garbage to send before the next.
    drop_after: int | None = None
    # Fault: refuse this many connection attempts (out of range, busy radio).
    refuse_connections: int = 0
    garbage: deque[bytes] = field(default_factory=deque)
    pending: deque[tuple[str, bytes]] = field(default_factory=deque)
    sent_values: int = 0
    sent_by_uuid: dict[str, int] = field(default_factory=dict)
    connections: int = 0
    clock_writes: int = 0
    # Measurements the patient takes later: (true time, ``measure`` keyword arguments), in
    # time order. :meth:`release_due` takes each when its time has come (live scenarios).
    scheduled: deque[tuple[datetime, dict[str, object]]] = field(default_factory=deque)
    memory: Memory = "forget"
    # False: measurements carry no time stamp (a device without a clock).
    timestamps: bool = True
    # User ID sent in each measurement (BP and weight: shared devices); None = field absent.
    user_id: int | None = None
    # "keep" devices: every confirmed value, sent again on each connection.
    kept: list[tuple[str, bytes]] = field(default_factory=list)
    # Values sent but not yet confirmed: still the device's (a lost link or a killed
    # collector means they come again).
    inflight: list[tuple[str, bytes]] = field(default_factory=list)
    confirmed_values: int = 0
    # Where the device keeps its memory, so it outlives the process of the gateway that
    # reads it (a real device does not forget because the gateway was SIGKILLed).
    state_file: Path | None = None

    def characteristics(self) -> list[Characteristic]:
        out: list[Characteristic] = []
        primary = self.profile.service_uuids[0]
        for spec in self.profile.characteristics:
            if spec.role is Role.INFO and spec.uuid not in _INFO_STRINGS:
                continue
            # Information, battery and clock live in their own SIG services.
            service = {
                Role.INFO: Uuid.DEVICE_INFORMATION,
                Role.BATTERY: Uuid.BATTERY,
                Role.CLOCK: Uuid.CURRENT_TIME_SERVICE,
            }.get(spec.role, primary)
            props = {
                Mode.INDICATE: ["indicate"],
                Mode.NOTIFY: ["notify"],
                Mode.READ: ["read"],
                Mode.WRITE: ["read", "write"],
            }[spec.mode]
            if spec.role is Role.RACP:
                props = ["write", "indicate"]
            out.append(Characteristic(spec.uuid, service, props))
        return out

    # -- the device's clock ---------------------------------------------------------

    def device_now(self, now: datetime | None = None) -> datetime:
        now = now or datetime.now(UTC)
        if self.clock_offset is None:
            # A reset clock counts up from its epoch; 2000-01-01 is typical.
            return datetime(2000, 1, 1, tzinfo=self.device_tz) + (now - datetime(2026, 1, 1, tzinfo=UTC)) % timedelta(
                days=30
            )
        return now + self.clock_offset

    def stamp(self, at: datetime | None = None) -> DateTime:
        """The device's wall-clock timestamp for a measurement taken at true time ``at``."""
        at = at or datetime.now(UTC)
        if self.clock_offset is None:
            return DateTime.from_datetime(self.device_now(at), self.device_tz)
        return DateTime.from_datetime(at + self.clock_offset, self.device_tz)

    # -- GATT server side ------------------------------------------------------------

    def read(self, uuid: str) -> bytes:
        if uuid == Uuid.BATTERY_LEVEL:
            return bytes(BatteryLevel(self.battery_pct))
        if uuid == Uuid.SERIAL_NUMBER:
            return bytes(InfoString(self.serial))
        if uuid == Uuid.MODEL_NUMBER:
            return bytes(InfoString(self.model))
        if uuid == Uuid.FIRMWARE_REVISION:
            return bytes(InfoString(self.firmware))
        if uuid == Uuid.MANUFACTURER_NAME:
            return bytes(InfoString("egenmon simulator"))
        if uuid == Uuid.HARDWARE_REVISION:
            return bytes(InfoString("A"))
        if uuid == Uuid.CURRENT_TIME:
            return bytes(CurrentTime.at(self.device_now(), self.device_tz))
        raise VirtualDeviceError(f"{self.address}: characteristic {uuid} is not readable")

    def write(self, uuid: str, data: bytes) -> list[tuple[str, bytes]]:
        """Handle a write; returns values to send back (indications)."""
        if uuid == Uuid.CURRENT_TIME:
            ct = CurrentTime.from_bytes(data)
            set_to = ct.time.to_datetime(self.device_tz)
            if set_to is not None:
                self.clock_offset = set_to - datetime.now(UTC)
                # Whole seconds only on the wire: treat < 2 s as exact.
                if abs(self.clock_offset.total_seconds()) < 2:
                    self.clock_offset = timedelta(0)
            self.clock_writes += 1
            return []
        raise VirtualDeviceError(f"{self.address}: characteristic {uuid} is not writable")

    def on_subscribed(self, uuid: str) -> list[tuple[str, bytes]]:
        """Values the device sends once the collector enables indications on ``uuid``."""
        spec = next((c for c in self.profile.characteristics if c.uuid == uuid), None)
        if spec is None or spec.role is not Role.MEASUREMENT:
            return []
        out = [(u, b) for u, b in self.pending if u == uuid]
        for item in out:
            self.pending.remove(item)
        self.inflight.extend(out)
        if self.memory == "keep":
            # The whole memory first, oldest first, as such cuffs do.
            return [*((u, b) for u, b in self.kept if u == uuid), *out]
        return out

    def confirmed(self, uuid: str, data: bytes) -> None:
        """The collector confirmed this value (its callback returned): the device is done with it."""
        self.confirmed_values += 1
        item = (uuid, data)
        if item in self.inflight:
            self.inflight.remove(item)
            if self.memory == "keep":
                self.kept.append(item)
            self.persist()

    def transfer_done(self) -> None:
        """The collector has everything: the device stops advertising until the next event."""
        self._return_unconfirmed()
        if not self.pending:
            self.advertising = False
        self.persist()

    def _return_unconfirmed(self) -> None:
        # Sent but never confirmed (the collector went away): still the device's to send.
        if self.inflight:
            self.pending.extendleft(reversed(self.inflight))
            self.inflight.clear()
            self.advertising = True

    # -- measurements (overridden per type) -----------------------------------------

    def schedule(self, at: datetime, **measure_args: object) -> None:
        """Take this measurement at true time ``at`` (see :meth:`release_due`)."""
        if self.scheduled and at < self.scheduled[-1][0]:
            # Rare (hand-written scenarios): keep the queue in time order.
            items = sorted([*self.scheduled, (at, measure_args)], key=lambda x: x[0])
            self.scheduled = deque(items)
        else:
            self.scheduled.append((at, measure_args))

    def release_due(self, now: datetime | None = None) -> int:
        """Take every scheduled measurement whose time has come; returns how many.

        The device then holds it like any other record and advertises, so a collector
        picks it up on its next connection.
        """
        now = now or datetime.now(UTC)
        n = 0
        while self.scheduled and self.scheduled[0][0] <= now:
            at, args = self.scheduled.popleft()
            self.measure(at=at, **args)  # type: ignore[attr-defined]
            n += 1
        return n

    def queue(self, uuid: str, data: bytes) -> None:
        self.pending.append((uuid, data))
        self.advertising = True
        self.persist()

    def keep_unsent(self, uuid: str, data: bytes) -> None:
        """A value the link lost mid-transfer: the device still has it for the next time."""
        item = (uuid, data)
        if item in self.inflight:
            self.inflight.remove(item)
        elif self.memory == "keep" and item in self.kept:
            return  # a resend of its memory: still in the memory
        self.pending.append(item)

    def link_lost(self) -> None:
        """The link dropped (after :meth:`keep_unsent` got the undelivered values)."""
        self._return_unconfirmed()
        self.persist()

    # -- memory that outlives the process ----------------------------------------------

    def persist(self) -> None:
        """Write the device's memory to ``state_file`` (atomically: a SIGKILL leaves the old or the new)."""
        if self.state_file is None:
            return
        doc = {
            "pending": [[u, b.hex()] for u, b in [*self.inflight, *self.pending]],
            "kept": [[u, b.hex()] for u, b in self.kept],
            "advertising": self.advertising,
            "next_sequence": getattr(self, "next_sequence", None),
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, self.state_file)

    def restore(self, path: Path) -> bool:
        """Take the memory saved in ``path``; False (nothing changed) when there is none yet."""
        self.state_file = path
        if not path.exists():
            return False
        doc = json.loads(path.read_text())
        self.pending = deque((u, bytes.fromhex(h)) for u, h in doc["pending"])
        self.kept = [(u, bytes.fromhex(h)) for u, h in doc["kept"]]
        self.advertising = bool(doc["advertising"])
        if doc.get("next_sequence") is not None and hasattr(self, "next_sequence"):
            self.next_sequence = int(doc["next_sequence"])
        return True

    def _stamp_or_none(self, at: datetime | None) -> DateTime | None:
        return self.stamp(at) if self.timestamps else None

    def inject_garbage(self, data: bytes | None = None) -> None:
        self.garbage.append(data if data is not None else random.randbytes(7))
        self.advertising = True


def _make(profile_id: str, address: str, name: str, **kw: object) -> dict[str, object]:
    return {"address": address, "name": name, "profile": get_profile(profile_id), **kw}


@dataclass
class BloodPressureCuff(VirtualDevice):
    @classmethod
    def create(cls, address: str = "F0:00:00:00:00:01", **kw: object) -> BloodPressureCuff:
        return cls(**_make("sig.blood_pressure", address, "BP-Cuff SIM", model="SIM-BP", **kw))  # type: ignore[arg-type]

    def measure(
        self, systolic: float, diastolic: float, pulse: float, *, at: datetime | None = None, status: int | None = None
    ) -> bytes:
        mean = round(diastolic + (systolic - diastolic) / 3)
        data = bytes(
            BloodPressureMeasurement(
                systolic=systolic,
                diastolic=diastolic,
                mean_arterial=mean,
                timestamp=self._stamp_or_none(at),
                pulse_rate=pulse,
                user_id=self.user_id,
                status=status,
            )
        )
        self.queue(Uuid.BLOOD_PRESSURE_MEASUREMENT, data)
        return data


@dataclass
class Scale(VirtualDevice):
    @classmethod
    def create(cls, address: str = "F0:00:00:00:00:04", **kw: object) -> Scale:
        return cls(**_make("sig.weight_scale", address, "Scale SIM", model="SIM-WS", **kw))  # type: ignore[arg-type]

    def measure(self, weight_kg: float, *, at: datetime | None = None) -> bytes:
        data = bytes(WeightMeasurement(weight=weight_kg, timestamp=self._stamp_or_none(at), user_id=self.user_id))
        self.queue(Uuid.WEIGHT_MEASUREMENT, data)
        return data


@dataclass
class PulseOximeter(VirtualDevice):
    @classmethod
    def create(cls, address: str = "F0:00:00:00:00:05", **kw: object) -> PulseOximeter:
        return cls(**_make("sig.pulse_oximeter", address, "Oximeter SIM", model="SIM-PLX", **kw))  # type: ignore[arg-type]

    def measure(self, spo2_pct: float, pulse: float, *, at: datetime | None = None) -> bytes:
        data = bytes(PlxSpotCheck(spo2_pct=spo2_pct, pulse_rate=pulse, timestamp=self._stamp_or_none(at)))
        self.queue(Uuid.PLX_SPOT_CHECK_MEASUREMENT, data)
        return data


@dataclass
class Thermometer(VirtualDevice):
    @classmethod
    def create(cls, address: str = "F0:00:00:00:00:06", **kw: object) -> Thermometer:
        return cls(**_make("sig.health_thermometer", address, "Thermo SIM", model="SIM-HT", **kw))  # type: ignore[arg-type]

    def measure(self, celsius: float, *, at: datetime | None = None) -> bytes:
        data = bytes(TemperatureMeasurement(temperature=celsius, timestamp=self._stamp_or_none(at)))
        self.queue(Uuid.TEMPERATURE_MEASUREMENT, data)
        return data


@dataclass
class PeakFlowMeter(VirtualDevice):
    """The example vendor-profile spirometer (device_profiles/profiles/example_pf100.toml)."""

    next_sequence: int = 1

    @classmethod
    def create(cls, address: str = "F0:00:00:00:00:07", **kw: object) -> PeakFlowMeter:
        return cls(**_make("vendor.andetag.pf100", address, "PF-100 0007", model="PF-100", **kw))  # type: ignore[arg-type]

    def measure(
        self, pef_l_min: float, fev1_l: float, fvc_l: float, *, at: datetime | None = None, poor_blow: bool = False
    ) -> bytes:
        codec = vendor_codec(packaged_profile_texts()[PF100_PROFILE_FILE], PF100_MEASUREMENT)
        # bit0 time stamp, bit1 FEV1, bit2 FVC, bit3 poor blow (example_pf100.toml).
        flags = (0x01 if self.timestamps else 0) | 0x06 | (0x08 if poor_blow else 0)
        values: dict[str, int | float | DateTime] = {
            "flags": flags,
            "sequence": self.next_sequence,
            "pef": pef_l_min,
            "fev1": fev1_l,
            "fvc": fvc_l,
        }
        if self.timestamps:
            values["timestamp"] = self.stamp(at)
        data = codec.encode(values)
        self.next_sequence += 1
        self.queue(PF100_MEASUREMENT, data)
        return data


# A CGM sensor session lasts 10-14 days; the virtual sensor is replaced after 14. The
# records' 16-bit minute offsets (at most 65535 min, ~45 days) then always fit.
CGM_SESSION_LENGTH = timedelta(days=14)
CGM_FEATURE_MULTIPLE_SESSIONS = 1 << 14  # CGM Feature bit 14 (CGMS §3.2)


@dataclass
class CgmSensor(VirtualDevice):
    """A CGM: records carry minutes since its sensor session started (``session_start``).

    With no ``session_start`` the first measurement starts a session; a measurement outside
    the current session (later than ``session_length``, or before its start) starts a new
    one, as when the patient puts on a new sensor. Records of an ended session that the
    collector has not fetched yet stay on the device with their own session: a connection
    reports the oldest such session's start and transfers only its records, so every
    record's offset is read against the session start it was encoded with.
    """

    session_start: datetime | None = None
    session_length: timedelta = CGM_SESSION_LENGTH
    # (session start, CGM Measurement values) of ended sessions not yet fetched, oldest first.
    ended_sessions: deque[tuple[datetime, list[bytes]]] = field(default_factory=deque)
    # A transfer of the oldest ended session is under way (it is dropped once complete).
    sending_ended_session: bool = False

    @classmethod
    def create(cls, address: str = "F0:00:00:00:00:03", **kw: object) -> CgmSensor:
        return cls(**_make("sig.cgm", address, "CGM SIM", model="SIM-CGM", **kw))  # type: ignore[arg-type]

    def reported_session_start(self) -> datetime:
        """The session start a collector reads now: that of the records it will get next."""
        if self.ended_sessions:
            return self.ended_sessions[0][0]
        if self.session_start is None:
            # No sensor session yet: the device reports the time it was switched on.
            self.session_start = datetime.now(UTC).replace(second=0, microsecond=0)
        return self.session_start

    def read(self, uuid: str) -> bytes:
        if uuid == Uuid.CGM_SESSION_START_TIME:
            start = DateTime.from_datetime(self.reported_session_start(), self.device_tz)
            return bytes(CgmSessionStartTime(start))
        if uuid == Uuid.CGM_FEATURE:
            # Multiple sessions; no E2E-CRC (its records carry none).
            return bytes(CgmFeature(features=CGM_FEATURE_MULTIPLE_SESSIONS))
        return super().read(uuid)

    def write(self, uuid: str, data: bytes) -> list[tuple[str, bytes]]:
        if uuid == Uuid.RECORD_ACCESS_CONTROL_POINT:
            req = RacpRequest.from_bytes(data)
            if self.ended_sessions:
                # One session per transfer: the collector read this session's start. The
                # session is kept until the collector disconnects normally (a lost link
                # gets it again; the reading ids dedupe what arrived twice).
                self.sending_ended_session = True
                out = [(Uuid.CGM_MEASUREMENT, b) for b in self.ended_sessions[0][1]]
            else:
                out = [(u, b) for u, b in self.pending]
                self.pending.clear()
            return [*out, (uuid, bytes(RacpResponse(req.op_code, RacpResponseCode.SUCCESS)))]
        return super().write(uuid, data)

    def on_subscribed(self, uuid: str) -> list[tuple[str, bytes]]:
        return []  # CGM records come through the RACP

    def transfer_done(self) -> None:
        if self.sending_ended_session:
            self.sending_ended_session = False
            self.ended_sessions.popleft()
        if not self.pending and not self.ended_sessions:
            self.advertising = False

    def keep_unsent(self, uuid: str, data: bytes) -> None:
        if self.sending_ended_session:
            return  # still stored with its own (ended) session; not in the current one
        super().keep_unsent(uuid, data)

    def link_lost(self) -> None:
        # The ended session's transfer did not complete: it stays for the next connection.
        self.sending_ended_session = False

    def start_session(self, at: datetime) -> None:
        """A new sensor from ``at`` (whole minutes, as the Session Start Time shows them)."""
        if self.session_start is not None and self.pending:
            self.ended_sessions.append((self.session_start, [b for _u, b in self.pending]))
            self.pending.clear()
        self.session_start = at.astimezone(UTC).replace(second=0, microsecond=0)

    def measure(self, mg_dl: float, *, at: datetime | None = None) -> bytes:
        at = at or datetime.now(UTC)
        start = self.session_start
        if start is None or at < start or at - start >= self.session_length:
            self.start_session(at)
        assert self.session_start is not None
        offset = int((at - self.session_start).total_seconds() // 60)
        data = bytes(CgmMeasurement(records=(CgmRecord(glucose_mg_dl=mg_dl, time_offset_min=offset),)))
        self.queue(Uuid.CGM_MEASUREMENT, data)
        return data


@dataclass
class StoredGlucose:
    sequence: int
    data: bytes


@dataclass
class GlucoseMeter(VirtualDevice):
    """Keeps numbered records; answers RACP "report stored records" requests."""

    records: list[StoredGlucose] = field(default_factory=list)
    next_sequence: int = 1
    racp_requests: list[RacpRequest] = field(default_factory=list)
    # Resend this many records before the requested sequence (a buggy meter).
    resend_before: int = 0

    @classmethod
    def create(cls, address: str = "F0:00:00:00:00:02", **kw: object) -> GlucoseMeter:
        return cls(**_make("sig.glucose", address, "Glucose SIM", model="SIM-BG", **kw))  # type: ignore[arg-type]

    def measure(self, mg_dl: float, *, at: datetime | None = None) -> bytes:
        seq = self.next_sequence
        self.next_sequence += 1
        data = bytes(
            GlucoseMeasurement(
                sequence=seq,
                base_time=self.stamp(at),
                concentration=mg_dl * KG_PER_L_PER_MG_DL,
                sample_type=1,  # capillary whole blood
                sample_location=1,  # finger
            )
        )
        self.records.append(StoredGlucose(seq, data))
        self.advertising = True
        return data

    def add_records(self, count: int, *, start: datetime, every: timedelta, mg_dl: float = 100.0) -> None:
        for i in range(count):
            self.measure(mg_dl + (i % 50), at=start + i * every)

    def on_subscribed(self, uuid: str) -> list[tuple[str, bytes]]:
        return []  # glucose records come only through the RACP

    def keep_unsent(self, uuid: str, data: bytes) -> None:
        pass  # stored records stay stored; the collector asks from its last sequence again

    def write(self, uuid: str, data: bytes) -> list[tuple[str, bytes]]:
        if uuid != Uuid.RECORD_ACCESS_CONTROL_POINT:
            return super().write(uuid, data)
        req = RacpRequest.from_bytes(data)
        self.racp_requests.append(req)
        lo = req.min_sequence
        if req.op_code is RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS:
            n = sum(1 for r in self.records if lo is None or r.sequence >= lo)
            return [(uuid, bytes(RacpNumberOfRecords(n)))]
        if req.op_code is not RacpOpCode.REPORT_STORED_RECORDS:
            return [(uuid, bytes(RacpResponse(req.op_code, RacpResponseCode.OP_CODE_NOT_SUPPORTED)))]
        start = 0 if lo is None else max(0, lo - self.resend_before)
        chosen = [r for r in self.records if r.sequence >= start]
        if not chosen:
            return [(uuid, bytes(RacpResponse(req.op_code, RacpResponseCode.NO_RECORDS_FOUND)))]
        return [
            *((Uuid.GLUCOSE_MEASUREMENT, r.data) for r in chosen),
            (uuid, bytes(RacpResponse(req.op_code, RacpResponseCode.SUCCESS))),
        ]


DEVICE_TYPES: dict[str, type[VirtualDevice]] = {
    "blood_pressure": BloodPressureCuff,
    "glucose": GlucoseMeter,
    "cgm": CgmSensor,
    "weight": Scale,
    "pulse_oximeter": PulseOximeter,
    "thermometer": Thermometer,
    "peak_flow": PeakFlowMeter,
}
