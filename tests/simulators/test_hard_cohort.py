"""The hard cohort (simulators/realism.py): everyday mess, episodes unchanged, deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from device_profiles.vocabulary import Condition, Kind
from simulators.cohort import CohortConfig, generate_cohort
from simulators.errors import SimulatorError
from simulators.series import HOUR_S

N, DAYS = 60, 20


@pytest.fixture(scope="module")
def cohorts() -> tuple:  # type: ignore[type-arg]
    return (
        generate_cohort(CohortConfig(N, seed=1, days=DAYS, realism="hard")),
        generate_cohort(CohortConfig(N, seed=1, days=DAYS)),
    )


def test_episodes_are_the_same_as_the_default_cohort(cohorts: tuple) -> None:  # type: ignore[type-arg]
    hard, default = cohorts
    assert hard.episodes() == default.episodes()


def test_deterministic_by_seed_and_different_from_default(cohorts: tuple) -> None:  # type: ignore[type-arg]
    hard, default = cohorts
    again = generate_cohort(CohortConfig(N, seed=1, days=DAYS, realism="hard"))
    p = hard.patients[0]
    for kind, s in hard.series(p).series.items():
        s2 = again.series(p).series[kind]
        assert np.array_equal(s.t_s, s2.t_s)
        for name, v in s.values.items():
            assert np.array_equal(v, s2.values[name], equal_nan=True)
    differs = any(
        len(hard.series(q).series[k]) != len(default.series(q).series[k])
        or not np.array_equal(hard.series(q).series[k].t_s, default.series(q).series[k].t_s)
        for q in hard.patients[:5]
        for k in hard.series(q).series
        if k is not Kind.GLUCOSE_CGM
    )
    assert differs


def test_post_meal_falls_of_two_mmol_outside_hypoglycaemia(cohorts: tuple) -> None:  # type: ignore[type-arg]
    hard, _ = cohorts
    falls = 0
    for p in hard.patients:
        sim = hard.series(p)
        if Kind.GLUCOSE_CGM not in sim.series:
            continue
        s = sim.series[Kind.GLUCOSE_CGM]
        g = s.values["glucose_interstitial"]
        in_ep = np.zeros(len(s), dtype=bool)
        for ep in sim.episodes:
            in_ep |= (s.t_s >= ep.start_s - 3 * HOUR_S) & (s.t_s <= ep.end_s + 3 * HOUR_S)
        step = 2 * HOUR_S // int(np.median(np.diff(s.t_s)))
        drop = g[:-step] - g[step:]
        ok = ~in_ep[:-step] & ~in_ep[step:] & (g[step:] > 3.9)
        falls += int(np.sum((drop >= 2.0) & ok))
    assert falls > 50  # ordinary falls after meals, none labelled as episodes


def test_copd_low_baseline_patients_exist(cohorts: tuple) -> None:  # type: ignore[type-arg]
    hard = generate_cohort(CohortConfig(200, seed=2, days=10, realism="hard"))
    low = []
    for p in hard.patients:
        if p.condition is not Condition.COPD:
            continue
        s = hard.series(p).series[Kind.SPO2]
        med_spo2 = float(np.median(s.values["spo2"]))
        med_pulse = float(np.median(s.values["pulse"]))
        if 88 <= med_spo2 <= 92 and med_pulse >= 90:
            low.append(p.index)
    assert len(low) >= 3


def test_unknown_realism_is_refused() -> None:
    with pytest.raises(SimulatorError):
        CohortConfig(1, realism="nightmare")
