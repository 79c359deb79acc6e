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

Measurement keys are the keyword arguments of the device type's ``measure`` method.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from simulators.ble.devices import DEVICE_TYPES, GlucoseMeter, SimulatorError, VirtualDevice
from simulators.ble.radio import VirtualRadio

SCENARIO_ENV = "EGENMON_SIM_BLE_SCENARIO"


def device_from_spec(spec: dict[str, Any]) -> VirtualDevice:
    kind = spec["type"]
    cls = DEVICE_TYPES.get(kind)
    if cls is None:
        raise SimulatorError(f"unknown device type {kind!r}")
    kw: dict[str, Any] = {}
    if "battery_pct" in spec:
        kw["battery_pct"] = int(spec["battery_pct"])
    if "serial" in spec:
        kw["serial"] = str(spec["serial"])
    create = getattr(cls, "create")  # noqa: B009 - every device type has a create() classmethod
    dev: VirtualDevice = create(spec["address"], **kw) if "address" in spec else create(**kw)
    if spec.get("clock_unset"):
        dev.clock_offset = None
    if spec.get("clock_offset_s") is not None:
        dev.clock_offset = timedelta(seconds=float(spec["clock_offset_s"]))
    for m in spec.get("measurements", []):
        args = dict(m)
        if "at" in args:
            args["at"] = datetime.fromisoformat(args["at"])
        dev.measure(**args)  # type: ignore[attr-defined]
    stored = spec.get("stored_records")
    if stored and isinstance(dev, GlucoseMeter):
        dev.add_records(
            int(stored["count"]),
            start=datetime.fromisoformat(stored["start"]),
            every=timedelta(seconds=float(stored.get("every_s", 3600))),
        )
    for g in spec.get("garbage", []):
        dev.inject_garbage(bytes.fromhex(g))
    if spec.get("drop_after") is not None:
        dev.drop_after = int(spec["drop_after"])
    return dev


def load_scenario(radio: VirtualRadio, path: Path) -> None:
    doc = json.loads(path.read_text())
    for spec in doc.get("devices", []):
        radio.add(device_from_spec(spec))


def load_scenario_from_env(radio: VirtualRadio) -> None:
    path = os.environ.get(SCENARIO_ENV)
    if path:
        load_scenario(radio, Path(path))
