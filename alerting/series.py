"""Columnar series and the vectorised segment operations every rule is built from.

A series holds one component (e.g. ``blood_pressure.systolic``) for many patients as
three aligned arrays sorted by (patient, time). Patients are integer indices into the
cohort. Censored sensor values are stored as -inf (sensor LOW) and +inf (sensor HIGH):
that makes a LOW reading count as below any low threshold and a HIGH one as above any
high threshold (CLINICAL_RULES.md, plausibility) with no special cases in the rules.
Rejected values never reach a series: the loader drops them, so no rule can fire on them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]

SEC_PER_MIN = 60.0
SEC_PER_HOUR = 3600.0
SEC_PER_DAY = 86400.0
LOCAL_TZ = ZoneInfo("Europe/Stockholm")


@dataclass(frozen=True, slots=True)
class Series:
    pat: I64
    t: F64
    v: F64

    @classmethod
    def build(cls, pat: object, t: object, v: object) -> Series:
        """Sort by (patient, time) and drop exact time duplicates (re-reads of a device).

        When two values share a patient and timestamp, the lower one is kept, so the
        result never depends on input order.
        """
        p = np.asarray(pat, dtype=np.int64)
        tt = np.asarray(t, dtype=np.float64)
        vv = np.asarray(v, dtype=np.float64)
        keep = ~np.isnan(vv) & ~np.isnan(tt)
        if not keep.all():
            p, tt, vv = p[keep], tt[keep], vv[keep]
        order = _sort_order(p, tt, vv)
        if order is not None:
            p, tt, vv = p[order], tt[order], vv[order]
        if len(p) > 1:
            first = np.ones(len(p), dtype=bool)
            first[1:] = (p[1:] != p[:-1]) | (tt[1:] != tt[:-1])
            p, tt, vv = p[first], tt[first], vv[first]
        return cls(p, tt, vv)

    @classmethod
    def empty(cls) -> Series:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.float64), np.zeros(0, np.float64))

    def __len__(self) -> int:
        return len(self.pat)

    def select(self, mask: B) -> Series:
        return Series(self.pat[mask], self.t[mask], self.v[mask])

    def between(self, lo: float, hi: float) -> Series:
        """Readings with lo < t <= hi."""
        if len(self) == 0 or (float(self.t.min()) > lo and float(self.t.max()) <= hi):
            return self
        return self.select((self.t > lo) & (self.t <= hi))

    def after(self, lo: float) -> Series:
        """Readings with t > lo, found per patient by a vectorised binary search.

        Equivalent to ``between(lo, inf)`` but touches only ~log2(readings per patient)
        values per patient instead of the whole series (CGM series are tens of millions long).
        """
        n = len(self)
        if n == 0:
            return self
        bounds = np.searchsorted(self.pat, np.arange(int(self.pat[-1]) + 2))
        first = bounds[:-1].copy()
        end = bounds[1:].copy()
        hi = end.copy()
        active = first < hi
        while active.any():
            mid = np.minimum((first + hi) // 2, n - 1)
            right = active & (self.t[mid] <= lo)
            first = np.where(right, mid + 1, first)
            hi = np.where(active & ~right, mid, hi)
            active = first < hi
        lengths = end - first
        total = int(lengths.sum())
        if total == n:
            return self
        offsets = np.cumsum(lengths) - lengths
        idx = np.repeat(first - offsets, lengths) + np.arange(total)
        return Series(self.pat[idx], self.t[idx], self.v[idx])

    def concat(self, other: Series) -> Series:
        return Series.build(
            np.concatenate([self.pat, other.pat]),
            np.concatenate([self.t, other.t]),
            np.concatenate([self.v, other.v]),
        )

    def last_time(self, n_patients: int) -> F64:
        """Time of each patient's newest reading (nan when none)."""
        out = np.full(n_patients, np.nan)
        if len(self):
            last = np.ones(len(self), dtype=bool)
            last[:-1] = self.pat[1:] != self.pat[:-1]
            out[self.pat[last]] = self.t[last]
        return out


Dataset = dict[str, Series]


def _sort_order(p: I64, t: F64, v: F64) -> I64 | None:
    """The (patient, time, value) order of the rows; None when they are in it already.

    The sweep's loader groups rows by patient in numpy and leaves each patient's rows in
    the order PostgreSQL stored them, which is time order but for late arrivals: only the
    patients with a row out of order are sorted (their rows stay in their own positions).
    """
    n = len(p)
    if n < 2:
        return None
    dp = np.diff(p)
    if (dp < 0).any():
        return np.lexsort((v, t, p))
    same = dp == 0
    dt = np.diff(t)
    bad = same & ((dt < 0) | ((dt == 0) & (v[1:] < v[:-1])))
    if not bad.any():
        return None
    rows = np.flatnonzero(np.isin(p, p[1:][bad]))
    order = np.arange(n)
    order[rows] = rows[np.lexsort((v[rows], t[rows], p[rows]))]
    return order


def same_patient_as_previous(pat: I64) -> B:
    out = np.zeros(len(pat), dtype=bool)
    out[1:] = pat[1:] == pat[:-1]
    return out


def run_start_times(s: Series, cond: B, max_gap_s: float) -> F64:
    """For each reading inside a run of consecutive readings meeting ``cond``, the time the run began.

    A run breaks at a new patient, at a reading not meeting the condition, or at a gap
    longer than ``max_gap_s`` (a sensor gap is not evidence the condition persisted).
    Readings outside any run get nan. Vectorised with a running maximum of start indices.
    """
    n = len(s)
    continues = np.zeros(n, dtype=bool)
    if n > 1:
        continues[1:] = cond[:-1] & cond[1:] & (s.pat[1:] == s.pat[:-1]) & (np.diff(s.t) <= max_gap_s)
    start = cond & ~continues
    idx = np.where(start, np.arange(n), -1)
    idx = np.maximum.accumulate(idx) if n else idx
    return np.where(cond, s.t[np.maximum(idx, 0)], np.nan)


def lag_index(s: Series, lag_s: float, max_lag_s: float) -> I64:
    """Index of the newest same-patient reading at least ``lag_s`` older, or -1.

    The reading must also be at most ``max_lag_s`` older. Uses one searchsorted over a
    composite (patient, time) key, which is monotone because the series is sorted.
    """
    n = len(s)
    if n == 0:
        return np.zeros(0, np.int64)
    t0 = float(s.t.min())
    span = float(s.t.max()) - t0 + max_lag_s + 1.0
    key = s.pat.astype(np.float64) * span + (s.t - t0)
    j = np.searchsorted(key, key - lag_s, side="right") - 1
    ok = j >= 0
    jj = np.maximum(j, 0)
    ok &= (s.pat[jj] == s.pat) & (s.t - s.t[jj] <= max_lag_s) & (s.t - s.t[jj] >= lag_s)
    return np.where(ok, jj, -1).astype(np.int64)


@dataclass(frozen=True, slots=True)
class Sessions:
    """Readings taken together (a duplicate BP, three PEF blows) collapsed into one value."""

    pat: I64
    t_first: F64
    t: F64  # time of the last reading of the session
    mean: F64
    max: F64
    count: I64


def sessions(s: Series, gap_s: float) -> Sessions:
    """Group readings of a patient no more than ``gap_s`` apart into sessions."""
    n = len(s)
    if n == 0:
        z = np.zeros(0)
        return Sessions(np.zeros(0, np.int64), z, z, z, z, np.zeros(0, np.int64))
    new = np.ones(n, dtype=bool)
    new[1:] = (s.pat[1:] != s.pat[:-1]) | (np.diff(s.t) > gap_s)
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], n) - 1
    count = (ends - starts + 1).astype(np.int64)
    total = np.add.reduceat(s.v, starts)
    return Sessions(
        s.pat[starts],
        s.t[starts],
        s.t[ends],
        total / count,
        np.maximum.reduceat(s.v, starts),
        count,
    )


@dataclass(frozen=True, slots=True)
class DayGrid:
    """Local (Europe/Stockholm) calendar days ending with today; index n_days-1 is today."""

    bounds: F64  # n_days + 1 local midnights as epoch seconds
    _memo: dict[int, tuple[F64, I64]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def ending(cls, now: float, n_days: int) -> DayGrid:
        local = datetime.fromtimestamp(now, LOCAL_TZ)
        today = local.date()
        days = [today - timedelta(days=n_days - 1 - k) for k in range(n_days + 1)]
        # Build each midnight from its local date so DST days get 23 or 25 hours.
        b = [datetime(d.year, d.month, d.day, tzinfo=LOCAL_TZ).timestamp() for d in days]
        return cls(np.asarray(b, dtype=np.float64))

    @property
    def n_days(self) -> int:
        return len(self.bounds) - 1

    def day_of(self, t: F64) -> I64:
        """Day index of each time; -1 outside the grid (memoised per array: rules share series)."""
        hit = self._memo.get(id(t))
        if hit is not None and hit[0] is t:
            return hit[1]
        d = np.searchsorted(self.bounds, t, side="right") - 1
        d[(d < 0) | (d >= self.n_days)] = -1
        self._memo[id(t)] = (t, d)
        return d


def daily_first(s: Series, grid: DayGrid, n_patients: int) -> tuple[F64, F64]:
    """Each patient's first reading of each day (e.g. morning weight): (values, times) grids."""
    vals = np.full((n_patients, grid.n_days), np.nan)
    times = np.full((n_patients, grid.n_days), np.nan)
    d = grid.day_of(s.t)
    ok = d >= 0
    key = s.pat[ok] * grid.n_days + d[ok]
    if len(key):
        first = np.ones(len(key), dtype=bool)
        first[1:] = key[1:] != key[:-1]
        vals.flat[key[first]] = s.v[ok][first]
        times.flat[key[first]] = s.t[ok][first]
    return vals, times


def daily_sum(s: Series, grid: DayGrid, n_patients: int) -> tuple[F64, F64]:
    """Each patient's sum of values per day and the count of readings (both 0 when none)."""
    d = grid.day_of(s.t)
    ok = d >= 0
    key = s.pat[ok] * grid.n_days + d[ok]
    size = n_patients * grid.n_days
    cnt = np.bincount(key, minlength=size).astype(np.float64)
    tot = np.asarray(np.bincount(key, weights=s.v[ok], minlength=size), dtype=np.float64)
    return tot.reshape(n_patients, grid.n_days), cnt.reshape(n_patients, grid.n_days)


def daily_mean(s: Series, grid: DayGrid, n_patients: int) -> tuple[F64, F64]:
    """Each patient's mean per day and the count of readings: (means (nan when none), counts)."""
    tot, cnt = daily_sum(s, grid, n_patients)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)
    return mean, cnt


def daily_reduce(s: Series, grid: DayGrid, n_patients: int, ufunc: np.ufunc) -> F64:
    """Per patient and day, ``ufunc.reduceat`` of the values (e.g. np.maximum): nan when none."""
    out = np.full((n_patients, grid.n_days), np.nan)
    d = grid.day_of(s.t)
    ok = d >= 0
    key = s.pat[ok] * grid.n_days + d[ok]
    if len(key):
        first = np.ones(len(key), dtype=bool)
        first[1:] = key[1:] != key[:-1]
        starts = np.flatnonzero(first)
        out.flat[key[starts]] = ufunc.reduceat(s.v[ok], starts)
    return out


def last_values(s: Series, n_patients: int) -> tuple[F64, F64]:
    """Each patient's newest value and its time (nan when none)."""
    vals = np.full(n_patients, np.nan)
    times = np.full(n_patients, np.nan)
    if len(s):
        last = np.ones(len(s), dtype=bool)
        last[:-1] = s.pat[1:] != s.pat[:-1]
        vals[s.pat[last]] = s.v[last]
        times[s.pat[last]] = s.t[last]
    return vals, times


def shift_cols(grid: F64, k: int) -> F64:
    """Grid shifted right by k days: column c holds day c−k (nan where that is before the grid)."""
    out = np.full(grid.shape, np.nan)
    if k < grid.shape[1]:
        out[:, k:] = grid[:, : grid.shape[1] - k]
    return out


def rolling_median(grid: F64, first_lag: int, last_lag: int, min_count: int) -> F64:
    """Per column c, the nan-ignoring median of days c−last_lag .. c−first_lag (needs min_count values).

    One pass per day column (≤ 29), over the patients with any value only.
    """
    _n_pat, n_days = grid.shape
    out = np.full(grid.shape, np.nan)
    rows = np.flatnonzero(~np.all(np.isnan(grid), axis=1))
    if len(rows) == 0:
        return out
    g = grid[rows]
    for c in range(n_days):
        lo, hi = max(c - last_lag, 0), max(c - first_lag + 1, 0)
        if hi <= lo:
            continue
        w = g[:, lo:hi]
        enough = (~np.isnan(w)).sum(axis=1) >= max(min_count, 1)
        if enough.any():
            col = np.full(len(rows), np.nan)
            col[enough] = np.nanmedian(w[enough], axis=1)
            out[rows, c] = col
    return out


def rolling_mean(grid: F64, first_lag: int, last_lag: int, min_count: int) -> F64:
    """Per column c, the nan-ignoring mean of days c−last_lag .. c−first_lag (needs min_count values).

    Prefix sums over the day axis make every window O(1) per cell.
    """
    _n_pat, n_days = grid.shape
    out = np.full(grid.shape, np.nan)
    # Only patients with any value in the grid (most have none of a given kind).
    rows = np.flatnonzero(~np.all(np.isnan(grid), axis=1))
    if len(rows) == 0:
        return out
    g = grid[rows]
    have = ~np.isnan(g)
    csum = np.zeros((len(rows), n_days + 1))
    ccnt = np.zeros((len(rows), n_days + 1))
    np.cumsum(np.where(have, g, 0.0), axis=1, out=csum[:, 1:])
    np.cumsum(have, axis=1, out=ccnt[:, 1:])
    c = np.arange(n_days)
    hi = np.clip(c - first_lag + 1, 0, n_days)
    lo = np.clip(c - last_lag, 0, n_days)
    tot = csum[:, hi] - csum[:, lo]
    cnt = ccnt[:, hi] - ccnt[:, lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        out[rows] = np.where((cnt >= max(min_count, 1)) & (hi > lo), tot / np.maximum(cnt, 1), np.nan)
    return out


def segment_chunks(s: Series, n_patients: int, max_values: int) -> list[tuple[int, int, int, int]]:
    """Split the series into runs of whole patients of about ``max_values`` readings.

    Returns (first patient, end patient, first index, end index) per chunk; a patient with
    more readings than ``max_values`` gets a chunk of its own. The loop over chunks is over
    a handful of blocks, never over patients.
    """
    bounds = np.searchsorted(s.pat, np.arange(n_patients + 1))
    total = int(bounds[-1])
    if total == 0:
        return []
    # Patient boundaries closest to multiples of max_values.
    targets = np.arange(max_values, total, max_values)
    cut_pat = np.unique(np.concatenate([[0], np.searchsorted(bounds, targets, side="left"), [n_patients]]))
    cut_pat = cut_pat[(cut_pat >= 0) & (cut_pat <= n_patients)]
    return [(int(lo), int(hi), int(bounds[lo]), int(bounds[hi])) for lo, hi in itertools.pairwise(cut_pat) if hi > lo]


def segment_sums(s: Series, n_patients: int, x: NDArray[np.generic] | None) -> F64:
    """Per patient sum of ``x`` (aligned with the series; None counts readings) via reduceat."""
    bounds = np.searchsorted(s.pat, np.arange(n_patients + 1))
    counts = np.diff(bounds).astype(np.float64)
    if x is None:
        return counts
    out = np.zeros(n_patients)
    present = np.flatnonzero(counts > 0)
    if len(present):
        # Patients without readings have empty segments, so the segment of a present patient
        # runs exactly to the start of the next present one.
        out[present] = np.add.reduceat(x, bounds[present], dtype=np.float64)
    return out
