"""Configure the virtual radio of another process from a JSON scenario file.

``EGENMON_SIM_BLE_SCENARIO=/path/scenario.json``::

    {"devices": [
        {"type": "blood_pressure", "address": "F0:00:00:00:00:01",
         "measurements": [{"systolic": 128, "diastolic": 82, "pulse": 66,
                           "at": "2026-11-25T07:00:00+00:00"}],
         "drop_after": null, "garbage": ["ff00"], "clock_unset": false, "battery_pct": 90},
        {"type": "glucose", "address": "F0:00:00:00:00:02",
         "stored_records": {"count": 300, "start": "2026-11-01T06:00:00+00:00", "every_s": 3600}}
    ]}

Measurement keys are the keyword arguments of the device type's ``measure`` method. A
measurement whose ``at`` is still in the future when the scenario loads is *scheduled*: the
device takes it when its time comes (wall clock) and then advertises, so a running gateway
picks it up on its next connection (the demo's live gateways). A ``cgm`` device may give
``session_start`` (ISO 8601) for its first sensor session and ``session_days`` for the
session length (default 14); later sessions start when a measurement needs one.

Device behaviour keys (all optional): ``memory`` ``"forget"`` (default: a confirmed value is
never sent again) or ``"keep"`` (the whole memory is sent again on every connection);
``timestamps`` false for a device without a clock (no Time Stamp field); ``user_id`` for
a shared cuff or scale (the User ID field of every measurement, e.g. 2 for user 2).

``EGENMON_SIM_BLE_STATE_DIR=/path``: each pushing device (not the RACP meters, whose stored
records are the scenario's anyway) keeps its memory in ``<dir>/<address>.json``, written
whenever a value is confirmed. A gateway process started again (after a SIGKILL) then finds
the devices as they were: values confirmed before the kill are gone from a "forget" device,
unconfirmed ones are still there. Only measurements still in the future are scheduled again.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from simulators.ble.devices import DEVICE_TYPES, CgmSensor, GlucoseMeter, VirtualDevice
from simulators.ble.radio import VirtualRadio
from simulators.errors import VirtualDeviceError

SCENARIO_ENV = "EGENMON_SIM_BLE_SCENARIO"
STATE_DIR_ENV = "EGENMON_SIM_BLE_STATE_DIR"


def device_from_spec(
    spec: dict[str, Any], now: datetime | None = None, *, state_dir: Path | None = None
) -> VirtualDevice:
    """One virtual device; measurements after ``now`` (default: the wall clock) are scheduled.

    With ``state_dir``, a pushing device's memory is kept there (see the module doc).
    """
    kind = spec["type"]
    cls = DEVICE_TYPES.get(kind)
    if cls is None:
        raise VirtualDeviceError(f"unknown device type {kind!r}")
    kw: dict[str, Any] = {}
    if "battery_pct" in spec:
        kw["battery_pct"] = int(spec["battery_pct"])
    if "serial" in spec:
        kw["serial"] = str(spec["serial"])
    create = getattr(cls, "create")  # noqa: B009 - every device type has a create() classmethod
    dev: VirtualDevice = create(spec["address"], **kw) if "address" in spec else create(**kw)
    if spec.get("memory") is not None:
        if spec["memory"] not in ("forget", "keep"):
            raise VirtualDeviceError(f"memory must be 'forget' or 'keep', not {spec['memory']!r}")
        dev.memory = spec["memory"]
    if spec.get("timestamps") is False:
        dev.timestamps = False
    if spec.get("user_id") is not None:
        dev.user_id = int(spec["user_id"])
    restored = False
    if state_dir is not None and not isinstance(dev, GlucoseMeter | CgmSensor):
        restored = dev.restore(state_dir / f"{dev.address.replace(':', '')}.json")
    if spec.get("clock_unset"):
        dev.clock_offset = None
    if spec.get("clock_offset_s") is not None:
        dev.clock_offset = timedelta(seconds=float(spec["clock_offset_s"]))
    if isinstance(dev, CgmSensor):
        if spec.get("session_days") is not None:
            dev.session_length = timedelta(days=float(spec["session_days"]))
        if spec.get("session_start"):
            dev.start_session(datetime.fromisoformat(spec["session_start"]))
    now = datetime.now(UTC) if now is None else now
    for m in spec.get("measurements", []):
        args = dict(m)
        at = datetime.fromisoformat(args.pop("at")) if "at" in args else None
        if at is not None and at > now:
            dev.schedule(at, **args)
        elif not restored:  # a restored memory already holds (or has delivered) it
            dev.measure(at=at, **args)  # type: ignore[attr-defined]
    stored = spec.get("stored_records")
    if stored and isinstance(dev, GlucoseMeter):
        dev.add_records(
            int(stored["count"]),
            start=datetime.fromisoformat(stored["start"]),
            every=timedelta(seconds=float(stored.get("every_s", 3600))),
        )
    for g in [] if restored else spec.get("garbage", []):
        dev.inject_garbage(bytes.fromhex(g))
    if spec.get("drop_after") is not None:
        dev.drop_after = int(spec["drop_after"])
    return dev


def load_scenario(radio: VirtualRadio, path: Path, *, state_dir: Path | None = None) -> None:
    doc = json.loads(path.read_text())
    if state_dir is not None:
        state_dir.mkdir(parents=True, exist_ok=True)
    for spec in doc.get("devices", []):
        dev = radio.add(device_from_spec(spec, state_dir=state_dir))
        dev.persist()


def load_scenario_from_env(radio: VirtualRadio) -> None:
    path = os.environ.get(SCENARIO_ENV)
    state = os.environ.get(STATE_DIR_ENV)
    if path:
        load_scenario(radio, Path(path), state_dir=Path(state) if state else None)
