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
from typing import Any

import numpy as np

from device_profiles.units import MG_DL_PER_MMOL_L
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


# simulators.ble device types (its scenario format) per kind; symptom forms have no device.
BLE_DEVICE_TYPES: dict[Kind, str] = {
    Kind.BLOOD_PRESSURE: "blood_pressure",
    Kind.WEIGHT: "weight",
    Kind.SPO2: "pulse_oximeter",
    Kind.GLUCOSE_CGM: "cgm",
    Kind.GLUCOSE_CAPILLARY: "glucose",
    Kind.SPIROMETRY: "peak_flow",
}


def _measure_args(m: PlannedMeasurement) -> dict[str, Any]:
    v = m.values
    if m.kind is Kind.BLOOD_PRESSURE:
        return {"systolic": v["systolic"], "diastolic": v["diastolic"], "pulse": v.get("pulse", 70.0)}
    if m.kind is Kind.WEIGHT:
        return {"weight_kg": v["weight"]}
    if m.kind is Kind.SPO2:
        return {"spo2_pct": v["spo2"], "pulse": v.get("pulse", 70.0)}
    if m.kind in (Kind.GLUCOSE_CGM, Kind.GLUCOSE_CAPILLARY):
        # The GATT glucose profiles carry mg/dL; the gateway converts back to mmol/L.
        mmol = v.get("glucose_interstitial", v.get("glucose", 0.0))
        return {"mg_dl": round(mmol * MG_DL_PER_MMOL_L, 1)}
    if m.kind is Kind.SPIROMETRY:
        pef = v.get("pef", 300.0)
        # The example peak-flow profile always reports FEV1 and FVC; a PEF-only series
        # (asthma) gets typical ratios (FEV1 ~ PEF/120 L, FEV1/FVC 0.8).
        fev1 = v.get("fev1", round(pef / 120.0, 2))
        return {"pef_l_min": pef, "fev1_l": fev1, "fvc_l": v.get("fvc", round(fev1 / 0.8, 2))}
    raise ValueError(f"no virtual BLE device for {m.kind.value}")


def ble_scenario(plan: list[PlannedMeasurement]) -> dict[str, Any]:
    """The plan as a ``simulators.ble`` scenario document (``EGENMON_SIM_BLE_SCENARIO``).

    One virtual device per planned device, holding its measurements with their times; a
    gateway started with that scenario reads them over the virtual radio. Kinds without a
    BLE device (symptom forms) are left out.
    """
    devices: dict[str, dict[str, Any]] = {}
    for m in plan:
        dtype = BLE_DEVICE_TYPES.get(m.kind)
        if dtype is None:
            continue
        spec = devices.setdefault(
            m.device.address,
            {"type": dtype, "address": m.device.address, "serial": m.device.serial, "measurements": []},
        )
        if dtype == "cgm" and "session_start" not in spec:
            # CGM records carry minutes since the sensor session started (a 16-bit
            # offset): a session starts with its first record; the virtual sensor starts
            # the next one when this one has run its length (simulators.ble.devices).
            spec["session_start"] = m.at.isoformat()
        spec["measurements"].append({**_measure_args(m), "at": m.at.isoformat()})
        if m.quirk is Quirk.CLOCK_UNSET:
            spec["clock_unset"] = True
    return {"devices": list(devices.values())}
