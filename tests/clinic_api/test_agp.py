"""AGP percentiles, consensus ranges, GMI, CV and sensor time on a hand-built series."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from clinic_api.agp import compute, gmi, local_minute_of_day
from clinic_api.labels import TZ


def _series() -> tuple[np.ndarray, np.ndarray, dt.datetime]:
    # 14 Stockholm days in January (UTC+1): 00:05 reads 1, 2, ..., 14 mmol/L; 12:10 always 6.0.
    end = dt.datetime(2024, 1, 15, tzinfo=TZ)
    t, g = [], []
    for d in range(14):
        day = dt.datetime(2024, 1, 1 + d, tzinfo=TZ)
        t += [(day + dt.timedelta(minutes=5)).timestamp(), (day + dt.timedelta(hours=12, minutes=10)).timestamp()]
        g += [float(d + 1), 6.0]
    return np.array(t), np.array(g), end


def test_percentiles_per_local_time_of_day_bin() -> None:
    t, g, end = _series()
    a = compute(t, g, end, days=14, bin_min=15)
    assert a is not None
    assert a.pct.shape == (5, 96)
    # Bin 00:00–00:15 holds 1..14: linear percentiles (k − 1) × 13 / 100 + 1.
    assert a.pct[:, 0] == pytest.approx([1.65, 4.25, 7.5, 10.75, 13.35])
    assert a.counts[0] == 14
    assert a.pct[:, 48] == pytest.approx([6.0] * 5)  # 12:00–12:15
    assert np.isnan(a.pct[:, 1]).all()
    assert a.counts[1] == 0
    assert a.counts.sum() == 28


def test_ranges_gmi_cv_and_active_time() -> None:
    t, g, end = _series()
    a = compute(t, g, end)
    assert a is not None
    # <3.0: 1, 2; 3.0–3.8: 3; 3.9–10: 4..10 and fourteen 6.0; 10.1–13.9: 11..13; >13.9: 14 (of 28).
    assert a.ranges_pct == pytest.approx(
        {"very_low": 200 / 28, "low": 100 / 28, "target": 75.0, "high": 300 / 28, "very_high": 100 / 28}
    )
    assert a.mean_mmol_l == pytest.approx(6.75)
    # GMI % = 3.31 + 0.02392 × (6.75 × 18.016) = 6.21886; (6.21886 − 2.15) × 10.929 = 44.469 mmol/mol.
    assert a.gmi_pct == pytest.approx(6.21886, abs=1e-4)
    assert a.gmi_mmol_mol == pytest.approx(44.469, abs=1e-3)
    # Σ(x − 6.75)² = 235.375 + 14 × 0.5625 = 243.25; SD = √(243.25 / 27) = 3.00154; CV = 44.467 %.
    assert a.cv_pct == pytest.approx(44.467, abs=1e-3)
    # 28 readings × 15 min (the median step, capped) over 14 days = 2.083 %.
    assert a.active_pct == pytest.approx(28 * 900 / (14 * 86400) * 100)


def test_range_boundaries_follow_the_consensus() -> None:
    end = dt.datetime(2024, 1, 2, tzinfo=dt.UTC)
    g = np.array([2.9, 3.0, 3.8, 3.9, 10.0, 10.1, 13.9, 14.0])
    t = end.timestamp() - 3600 + np.arange(len(g)) * 300.0
    a = compute(t, g, end)
    assert a is not None
    assert a.ranges_pct == pytest.approx(
        {"very_low": 12.5, "low": 25.0, "target": 25.0, "high": 25.0, "very_high": 12.5}
    )


def test_gmi_reference_values() -> None:
    # 154 mg/dL (8.55 mmol/L) is GMI 7.0 % in Bergenstal's table.
    pct, mmol = gmi(154 / 18.016)
    assert pct == pytest.approx(3.31 + 0.02392 * 154)
    assert pct == pytest.approx(6.99, abs=0.01)
    assert mmol == pytest.approx((pct - 2.15) * 10.929)


def test_local_time_of_day_across_dst() -> None:
    winter = dt.datetime(2024, 1, 10, 11, 0, tzinfo=dt.UTC).timestamp()  # 12:00 local
    summer = dt.datetime(2024, 7, 10, 10, 0, tzinfo=dt.UTC).timestamp()  # 12:00 local
    after_change = dt.datetime(2024, 3, 31, 1, 30, tzinfo=dt.UTC).timestamp()  # 03:30 CEST
    assert list(local_minute_of_day(np.array([winter, summer, after_change]))) == [720, 720, 210]


def test_bins_widen_for_sparse_sensors() -> None:
    end = dt.datetime(2024, 1, 15, tzinfo=TZ)
    every_30 = end.timestamp() - 86400 + np.arange(48) * 1800.0
    a = compute(every_30, np.full(48, 6.0), end)
    assert a is not None
    assert a.bin_min == 30
    assert (a.counts == 1).all()
    every_5 = end.timestamp() - 86400 + np.arange(288) * 300.0
    b = compute(every_5, np.full(288, 6.0), end)
    assert b is not None
    assert b.bin_min == 15
    assert (b.counts == 3).all()
    assert b.active_pct == pytest.approx(100 / 14)


def test_no_readings_no_profile() -> None:
    assert compute(np.zeros(0), np.zeros(0), dt.datetime(2024, 1, 1, tzinfo=dt.UTC)) is None
