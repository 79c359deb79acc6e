"""The measurement plan handed to virtual BLE devices mirrors the simulated series."""

from __future__ import annotations

from datetime import timedelta

from device_profiles.vocabulary import KINDS, Condition
from simulators.cohort import CohortConfig, generate_cohort
from simulators.plan import measurement_plan


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
