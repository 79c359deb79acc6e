"""Building blocks shared by the rules of several conditions (sessions, confirmation, pulse, symptoms, gaps)."""

from __future__ import annotations

import numpy as np

from alerting import baselines
from alerting.rules.framework import (
    CONFIRM_S,
    INFO,
    LOOKBACK_MARGIN_H,
    LOW,
    SESSION_GAP_S,
    SPO2,
    Context,
    Occurrences,
    max_severity,
)
from alerting.series import (
    F64,
    SEC_PER_DAY,
    SEC_PER_HOUR,
    B,
    Series,
    Sessions,
    daily_first,
    daily_reduce,
    daily_sum,
    sessions,
)


def confirmed(s: Series) -> tuple[B, F64]:
    """A reading confirmed by the previous one within CONFIRM_S; the confirmed level is the better of the two."""
    j = np.arange(len(s)) - 1
    ok = (j >= 0) & np.concatenate([[False], (s.pat[1:] == s.pat[:-1]) & (np.diff(s.t) <= CONFIRM_S)])
    prev = np.where(ok, s.v[np.maximum(j, 0)], np.nan)
    return ok, np.fmax(s.v, prev)


def pulse_daily(ctx: Context, sources: tuple[Series, Series]) -> tuple[F64, F64]:
    """Daily mean pulse over both devices and each day's first pulse time."""

    def make() -> tuple[F64, F64]:
        n = ctx.cohort.n
        (s1, c1), (s2, c2) = (daily_sum(s, ctx.grid, n) for s in sources)
        tot = s1 + s2
        cnt = c1 + c2
        with np.errstate(invalid="ignore", divide="ignore"):
            dm = np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)
        ft = np.fmin(daily_first(sources[0], ctx.grid, n)[1], daily_first(sources[1], ctx.grid, n)[1])
        return dm, ft

    return ctx.cached("pulse_daily", make)


def symptom_days(ctx: Context, keys: tuple[str, ...], min_items: int = 1) -> B:
    """Days (patients × days) on which at least min_items of the "worse" items were answered yes."""

    def make() -> F64:
        cnt: F64 = np.zeros((ctx.cohort.n, ctx.grid.n_days))
        for k in keys:
            mx = daily_reduce(ctx.s(k), ctx.grid, ctx.cohort.n, np.maximum)
            cnt += np.nan_to_num(mx, nan=0.0) >= 1
        return cnt

    cnt: F64 = ctx.cached("sym:" + ",".join(keys), make)
    return cnt >= min_items


def symptom_times(ctx: Context, keys: tuple[str, ...]) -> F64:
    t = np.full((ctx.cohort.n, ctx.grid.n_days), np.nan)
    for k in keys:
        _, ft = ctx.daily_first(k)
        t = np.fmax(t, ft)
    return t


def bp_sessions(ctx: Context, key: str, hours: float | None = LOOKBACK_MARGIN_H) -> Sessions:
    """Sessions of the last ``hours`` (point rules need a day, not the whole 28-day load)."""
    return ctx.cached(f"sess:{key}@{hours}", lambda: sessions(ctx.s(key, hours), SESSION_GAP_S))


def gap_occurrences(ctx: Context, last: F64, applies: B, info_h: F64, low_h: F64) -> Occurrences:
    """Time-based no-data occurrence; its time is when the gap crossed the threshold."""
    start = np.where(np.isnan(last), ctx.now - ctx.grid.n_days * SEC_PER_DAY, last)
    start = ctx.cohort.since_monitoring(start)
    gap_h = (ctx.now - start) / SEC_PER_HOUR
    sev = max_severity((applies & (gap_h > info_h), INFO), (applies & (gap_h > low_h), LOW))
    at = np.where(sev == LOW, start + low_h * SEC_PER_HOUR, start + info_h * SEC_PER_HOUR)
    return Occurrences.of(np.arange(ctx.cohort.n), sev, np.minimum(at, ctx.now), gap_h, start)


# A COPD patient whose own stable SpO2 is this low or lower lives on the 88–92 % target.
LOW_SPO2_BASELINE_PCT = 92.0


def spo2_target_low(ctx: Context) -> B:
    """Patients judged against the 88–92 % SpO2 target: a hypercapnic care plan, or COPD with a
    personal baseline (median of days −28..−8, ≥ 7 days) at or below 92 %.

    Many COPD patients live at 88–92 %; scoring them on the general 96 % target made C1 and
    NEWS2 fire at every measurement of a stable patient.
    """

    def make() -> B:
        dm, _ = ctx.daily_mean(SPO2)
        base = baselines.median_mad(dm)
        with np.errstate(invalid="ignore"):
            own = ctx.cohort.has("copd") & base.sufficient & (base.median <= LOW_SPO2_BASELINE_PCT)
        return np.asarray(ctx.cohort.hypercapnic | own, dtype=bool)

    return ctx.cached("spo2_target_low", make)


def pulse_baseline(ctx: Context) -> F64:
    """Each patient's own resting pulse: median of the daily means of days −28..−8 (nan below 7 days)."""

    def make() -> F64:
        dm, _ = pulse_daily(ctx, ctx.pulses())
        return baselines.median_mad(dm).median

    return ctx.cached("pulse_baseline", make)
