"""Server-side downsampling of long series into time buckets with min/mean/max (numpy).

Bucketing keeps extremes visible (a 10-minute hypo inside a 90-day chart still shows as a
bucket minimum), which LTTB-style point selection can drop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Buckets:
    t_s: F64  # bucket centre (or the reading's own time when not downsampled), epoch seconds
    mean: F64
    min: F64
    max: F64
    n: npt.NDArray[np.int64]
    downsampled: bool


def bucket(t_s: F64, values: F64, start_s: float, end_s: float, max_points: int) -> Buckets:
    """Aggregate time-sorted ``(t_s, values)`` into at most ``max_points`` equal-width buckets."""
    if t_s.shape != values.shape:
        raise ValueError("times and values differ in length")
    if len(t_s) <= max_points or end_s <= start_s:
        ones = np.ones(len(t_s), dtype=np.int64)
        return Buckets(t_s, values, values, values, ones, downsampled=False)
    width = (end_s - start_s) / max_points
    idx = np.clip(((t_s - start_s) // width).astype(np.int64), 0, max_points - 1)
    # Times are sorted, so each bucket is one contiguous run: reduceat over run starts.
    starts = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])
    counts = np.diff(np.r_[starts, len(idx)]).astype(np.int64)
    sums = np.add.reduceat(values, starts)
    return Buckets(
        t_s=(start_s + (idx[starts] + 0.5) * width).astype(np.float64),
        mean=sums / counts,
        min=np.minimum.reduceat(values, starts),
        max=np.maximum.reduceat(values, starts),
        n=counts,
        downsampled=True,
    )
