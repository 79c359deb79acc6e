"""The seam to the virtual BLE devices: a patient's series as measurements to perform.

The small-cohort path (the demo, end-to-end tests) runs readings through the virtual BLE
devices of ``simulators.ble`` and the real gateway code instead of publishing the wire
format directly. This module turns a simulated series into "perform this measurement on
virtual device X at time T"; the virtual device then stores the record, indicates it over
its GATT characteristic (or keeps it for RACP), and the gateway does the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from device_profiles.vocabulary import Kind
from simulators.cohort import DeviceSpec, PatientSpec
from simulators.series import PatientSeries, Quirk, to_datetime


@dataclass(frozen=True)
class PlannedMeasurement:
    """One measurement for a virtual device to take, in stored units."""

    at: datetime  # when the patient takes it (the device clock, if set, says this time)
    device: DeviceSpec  # which virtual device: address, model, serial, kind
    kind: Kind
    values: dict[str, float]
    # Device-reported context flag (e.g. "meal_preprandial"), or None.
    context: str | None
    # The device misbehaves: resend the stored record, or report with an unset clock.
    quirk: Quirk


def measurement_plan(patient: PatientSpec, sim: PatientSeries, lo: datetime, hi: datetime) -> list[PlannedMeasurement]:
    """Every measurement of ``patient`` with ``lo <= at < hi``, in time order."""
    a, b = int(lo.timestamp()), int(hi.timestamp())
    out: list[PlannedMeasurement] = []
    devices = {d.kind: d for d in patient.devices}
    for kind, s in sim.series.items():
        i, j = (int(x) for x in np.searchsorted(s.t_s, [a, b], side="left"))
        for k in range(i, j):
            ctx = str(s.context[k])
            out.append(
                PlannedMeasurement(
                    at=to_datetime(s.t_s[k]),
                    device=devices[kind],
                    kind=kind,
                    values={name: float(v[k]) for name, v in s.values.items()},
                    context=ctx or None,
                    quirk=Quirk(int(s.quirk[k])),
                )
            )
    out.sort(key=lambda m: (m.at, m.device.address))
    return out
