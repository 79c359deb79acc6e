"""COPD patients judged against their own stable values, not the general population's."""

from __future__ import annotations

import numpy as np

from alerting.rules import OXIMETER_PULSE, SPO2
from alerting.series import Series, rolling_median
from tests.alerting.helpers import DAY, HOUR, MIN, cohort, series, severity


def daily(value: float, days: range, *, extra: list[tuple[float, float]] | None = None) -> Series:
    """One reading a day at mid-morning for the given days ago, plus extra (seconds ago, value) readings."""
    return series([(d * DAY + 2 * HOUR, value) for d in days] + (extra or []))


STABLE_DAYS = range(8, 29)  # the baseline period, days −28..−8
TODAY = [(10 * MIN, 90.0), (6 * MIN, 90.0)]  # confirmed 90 %


def test_copd_patient_living_at_90_percent_is_not_an_alert_every_day() -> None:
    own = {SPO2: daily(90.0, STABLE_DAYS, extra=TODAY)}
    assert severity("C1", own, cohort("copd")) is None
    assert severity("NEWS2", own, cohort("copd")) is None
    # Without a personal baseline the general target still applies.
    new_patient = {SPO2: series(TODAY)}
    assert severity("C1", new_patient, cohort("copd")) == "medium"
    assert severity("NEWS2", new_patient, cohort("copd")) == "high"


def test_copd_low_baseline_still_alerts_below_88() -> None:
    data = {SPO2: daily(90.0, STABLE_DAYS, extra=[(10 * MIN, 87.0), (6 * MIN, 86.0)])}
    assert severity("C1", data, cohort("copd")) == "high"


def test_a_normal_baseline_keeps_the_general_target() -> None:
    data = {SPO2: daily(96.0, STABLE_DAYS, extra=TODAY)}
    assert severity("C1", data, cohort("copd")) == "medium"


def test_c4_uses_the_patients_own_resting_pulse() -> None:
    lives_at_96 = daily(96.0, STABLE_DAYS, extra=[(10 * MIN, 99.0)])
    assert severity("C4", {OXIMETER_PULSE: lives_at_96}, cohort("copd")) is None
    risen = daily(96.0, STABLE_DAYS, extra=[(10 * MIN, 107.0)])
    assert severity("C4", {OXIMETER_PULSE: risen}, cohort("copd")) == "low"
    # A patient whose own pulse is 70 still alerts at the absolute 95.
    lives_at_70 = daily(70.0, STABLE_DAYS, extra=[(10 * MIN, 96.0)])
    assert severity("C4", {OXIMETER_PULSE: lives_at_70}, cohort("copd")) == "low"


def test_rolling_median_matches_a_scalar_median_per_window() -> None:
    rng = np.random.default_rng(3)
    grid = rng.normal(140, 10, size=(5, 29))
    grid[rng.random(grid.shape) < 0.3] = np.nan
    grid[4] = np.nan  # a patient without any value
    out = rolling_median(grid, 1, 7, 4)
    for i in range(5):
        for c in range(29):
            window = grid[i, max(c - 7, 0) : max(c, 0)]
            vals = window[~np.isnan(window)]
            if len(vals) >= 4:
                assert out[i, c] == float(np.median(vals))
            else:
                assert np.isnan(out[i, c])
