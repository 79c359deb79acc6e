"""The measurement plan handed to virtual BLE devices mirrors the simulated series."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from device_profiles.vocabulary import KINDS, Condition
from simulators.ble.radio import VirtualRadio
from simulators.ble.scenario import device_from_spec
from simulators.cohort import CohortConfig, generate_cohort
from simulators.plan import BLE_DEVICE_TYPES, ble_scenario, measurement_plan


def test_plan_lists_every_measurement_in_order_on_the_right_device() -> None:
    cohort = generate_cohort(CohortConfig(3, seed=5, days=3))
    p = next(q for q in cohort.patients if q.condition is Condition.HEART_FAILURE)
    sim = cohort.series(p)
    lo, hi = cohort.config.start, cohort.config.start + timedelta(days=3)
    plan = measurement_plan(p, sim, lo, hi)
    assert len(plan) == sim.n_readings()
    assert [m.at for m in plan] == sorted(m.at for m in plan)
    for m in plan:
        assert lo <= m.at < hi
        assert m.device.kind is m.kind
        assert m.device in p.devices
        assert set(m.values) <= set(KINDS[m.kind].components)
    day1 = measurement_plan(p, sim, lo, lo + timedelta(days=1))
    assert 0 < len(day1) < len(plan)


def test_ble_scenario_loads_into_the_virtual_radio() -> None:
    # Late in the year: the CGM's session starts with the plan (16-bit minute offsets).
    cohort = generate_cohort(CohortConfig(6, seed=5, days=2, start=datetime(2026, 11, 10, tzinfo=UTC)))
    for p in cohort.patients:
        sim = cohort.series(p)
        lo, hi = cohort.config.start, cohort.config.start + timedelta(days=1)
        plan = measurement_plan(p, sim, lo, hi)
        doc = ble_scenario(plan)
        json.dumps(doc)  # the scenario travels as a file
        with_device = [m for m in plan if m.kind in BLE_DEVICE_TYPES]
        assert sum(len(d["measurements"]) for d in doc["devices"]) == len(with_device)
        radio = VirtualRadio()
        for spec in doc["devices"]:
            radio.add(device_from_spec(spec))
        assert len(doc["devices"]) == len({m.device.address for m in with_device})
    glucose = next(p for p in cohort.patients if p.condition is Condition.DIABETES_T1)
    doc = ble_scenario(measurement_plan(glucose, cohort.series(glucose), lo, hi))
    cgm = next(d for d in doc["devices"] if d["type"] == "cgm")
    # mg/dL on the air, as the GATT profile carries it.
    assert all(36 <= m["mg_dl"] <= 400 for m in cgm["measurements"])
    assert cgm["session_start"] == cgm["measurements"][0]["at"]
