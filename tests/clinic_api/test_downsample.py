"""Bucket downsampling against a scalar reference (property test)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from clinic_api.downsample import bucket


def reference(
    t: list[float], v: list[float], start: float, end: float, k: int
) -> dict[int, tuple[float, float, float, int]]:
    width = (end - start) / k
    out: dict[int, list[float]] = {}
    for ti, vi in zip(t, v, strict=True):
        i = min(k - 1, max(0, math.floor((ti - start) / width)))
        out.setdefault(i, []).append(vi)
    return {i: (min(xs), sum(xs) / len(xs), max(xs), len(xs)) for i, xs in out.items()}


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 1000), st.floats(-50, 50)), min_size=0, max_size=300),
    st.integers(1, 40),
)
def test_bucket_matches_reference(points: list[tuple[float, float]], k: int) -> None:
    points.sort()
    t = [p[0] for p in points]
    v = [p[1] for p in points]
    b = bucket(np.array(t, dtype=np.float64), np.array(v, dtype=np.float64), 0.0, 1000.0, k)
    if len(points) <= k:
        assert not b.downsampled
        assert b.mean.tolist() == v
        return
    ref = reference(t, v, 0.0, 1000.0, k)
    assert b.downsampled
    assert len(b.t_s) == len(ref) <= k
    for (i, (lo, mean, hi, n)), t_mid, bl, bm, bh, bn in zip(
        sorted(ref.items()), b.t_s, b.min, b.mean, b.max, b.n, strict=True
    ):
        assert t_mid == (i + 0.5) * (1000.0 / k)
        assert (bl, bh, bn) == (lo, hi, n)
        assert math.isclose(bm, mean, rel_tol=1e-9, abs_tol=1e-9)
    assert int(b.n.sum()) == len(points)


def test_extremes_survive_downsampling() -> None:
    t = np.arange(25_000, dtype=np.float64) * 300.0
    v = np.full(25_000, 7.0)
    v[12_345] = 2.4  # one hypoglycaemic reading in 90 days
    b = bucket(t, v, 0.0, 25_000 * 300.0, 500)
    assert len(b.t_s) == 500
    assert b.min.min() == 2.4
