"""The simulated patient who measures again: persistent offsets repeat, one-off outliers do not."""

from __future__ import annotations

import numpy as np

from device_profiles.vocabulary import Kind
from simulators.repeats import repeat_reading
from simulators.series import DAY_S, KindSeries, PatientSeries

DAY0 = 20_000 * DAY_S  # a midnight (UTC)


def bp(times: list[int], systolic: list[float], diastolic: list[float]) -> PatientSeries:
    n = len(times)
    s = KindSeries(
        Kind.BLOOD_PRESSURE,
        np.asarray(times, dtype=np.int64),
        {"systolic": np.asarray(systolic, dtype=np.float64), "diastolic": np.asarray(diastolic, dtype=np.float64)},
        np.zeros(n, dtype=np.int8),
        np.asarray([""] * n),
    )
    return PatientSeries({Kind.BLOOD_PRESSURE: s})


def repeats(hard: PatientSeries, clean: PatientSeries, trigger: int, n: int = 200) -> np.ndarray:
    rng = np.random.default_rng(1)
    out = []
    for _ in range(n):
        r = repeat_reading(hard, clean, Kind.BLOOD_PRESSURE, trigger, at=trigger + 300, rng=rng)
        assert r is not None
        assert r.t_s.tolist() == [trigger + 300]
        out.append(r.values["systolic"][0])
    return np.asarray(out)


def test_a_wrong_cuff_repeats_and_an_outlier_does_not() -> None:
    times = [DAY0 + 7 * 3600, DAY0 + 12 * 3600, DAY0 + 19 * 3600]
    clean = bp(times, [140, 138, 142], [85, 84, 86])
    cuff = bp(times, [152, 150, 154], [92, 91, 93])  # +12 on every reading: persists
    outlier = bp(times, [140, 182, 142], [85, 112, 86])  # one reading far off: does not
    assert abs(float(np.mean(repeats(cuff, clean, times[1]))) - 150) < 1.5
    after_outlier = repeats(outlier, clean, times[1])
    assert abs(float(np.mean(after_outlier)) - 138) < 1.5
    assert float(after_outlier.max()) < 160  # device noise only (sd 4 mm Hg)
    assert float(np.std(after_outlier)) > 1.0  # noise is drawn anew each time


def test_no_reading_of_that_kind_gives_none() -> None:
    clean = bp([DAY0], [140], [85])
    assert (
        repeat_reading(clean, PatientSeries({}), Kind.BLOOD_PRESSURE, DAY0, at=DAY0 + 300, rng=np.random.default_rng(0))
        is None
    )
