"""Asthma rules A1–A6 (CLINICAL_RULES.md, "Asthma")."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from alerting import baselines
from alerting.rules.framework import (
    CRITICAL,
    HIGH,
    INFO,
    LOOKBACK_MARGIN_H,
    LOW,
    MEDIUM,
    NONE,
    PEF,
    RELIEVER,
    SESSION_GAP_S,
    Context,
    Evaluate,
    Occurrences,
    Params,
    max_severity,
    rule,
)
from alerting.series import (
    Series,
    Sessions,
    daily_first,
    daily_reduce,
    rolling_mean,
    sessions,
    shift_cols,
)


def _pef_sessions(ctx: Context, hours: float | None = LOOKBACK_MARGIN_H) -> Sessions:
    return ctx.cached(f"pefs@{hours}", lambda: sessions(ctx.s(PEF, hours), SESSION_GAP_S))


def _pef_zone(ctx: Context, p: Params, sev: int, banded: bool) -> Occurrences:
    """PEF zones: best of a session's blows as % of personal best.

    A banded zone fires only from ``band_floor_pct`` up (the next zone's limit), so one blow
    is reported by one zone rule.
    """
    ss = _pef_sessions(ctx)
    pct = ss.max / ctx.cohort.personal_best_pef[ss.pat] * 100
    with np.errstate(invalid="ignore"):
        fired = pct < p("below_pct")[ss.pat]
        if banded:
            fired &= pct >= p("band_floor_pct")[ss.pat]
    return Occurrences.of(ss.pat, np.where(fired, sev, NONE), ss.t, pct, ss.t_first)


def _pef_zone_rule(
    rule_id: str, title: str, params: dict[str, float], severities: str, safety_net: int | None = None
) -> Callable[[Evaluate], Evaluate]:
    """A1–A3 share everything but their limits: one reading's zone, judged over the last day."""
    return rule(
        rule_id,
        title,
        conditions=("asthma",),
        reads=(PEF,),
        window_days=1,
        lookback_h=24,
        hysteresis_h=24,
        params=params,
        severities=severities,
        safety_net=safety_net,
    )


@_pef_zone_rule("A1", "PEF < 80 % of personal best (yellow zone)", {"below_pct": 80, "band_floor_pct": 60}, "low")
def a1(ctx: Context, p: Params) -> Occurrences:
    return _pef_zone(ctx, p, LOW, banded=True)


@_pef_zone_rule("A2", "PEF < 60 % of personal best", {"below_pct": 60, "band_floor_pct": 50}, "high")
def a2(ctx: Context, p: Params) -> Occurrences:
    return _pef_zone(ctx, p, HIGH, banded=True)


# The red zone needs a personal best: it applies to anyone whose care plan has one.
@_pef_zone_rule("A3", "PEF < 50 % of personal best (red zone)", {"below_pct": 50}, "critical", safety_net=CRITICAL)
def a3(ctx: Context, p: Params) -> Occurrences:
    return _pef_zone(ctx, p, CRITICAL, banded=False)


@rule(
    "A4",
    "Morning PEF ≥ 20 % below baseline on 2 consecutive mornings",
    conditions=("asthma",),
    reads=(PEF,),
    window_days=28,
    lookback_h=36,
    hysteresis_h=24,
    params={"drop_pct": 20},
    severities="medium; baseline = personal best, else median of days −28..−8 (≥ 7 days)",
)
def a4(ctx: Context, p: Params) -> Occurrences:
    ss = _pef_sessions(ctx, None)
    best = Series(ss.pat, ss.t, ss.max)
    mpef, mt = daily_first(best, ctx.grid, ctx.cohort.n)
    med = baselines.median_mad(mpef).median
    base = np.where(np.isnan(ctx.cohort.personal_best_pef), med, ctx.cohort.personal_best_pef)
    limit = (base * (1 - p("drop_pct") / 100))[:, None]
    with np.errstate(invalid="ignore"):
        fired = (mpef <= limit) & (shift_cols(mpef, 1) <= limit)
    return Occurrences.from_grid(np.where(fired, MEDIUM, NONE), mt, mpef / base[:, None] * 100, 1.5)


_A5_FIXED = {"min_days": 7}


@rule(
    "A5",
    "PEF diurnal variability",
    conditions=("asthma",),
    reads=(PEF,),
    window_days=14,
    lookback_h=24,
    hysteresis_h=24 * 3,
    params={"max_pct": 10},
    fixed=_A5_FIXED,
    severities="mean of (max − min)/mean(max, min) over ≥ 7 of the last 14 days > 10 %: low",
)
def a5(ctx: Context, p: Params) -> Occurrences:
    s = ctx.s(PEF)
    mx = daily_reduce(s, ctx.grid, ctx.cohort.n, np.maximum)
    mn = daily_reduce(s, ctx.grid, ctx.cohort.n, np.minimum)
    _, cnt = ctx.daily_mean(PEF)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(cnt >= 2, (mx - mn) / ((mx + mn) / 2) * 100, np.nan)
    mean = rolling_mean(var, 0, 13, int(_A5_FIXED["min_days"]))[:, -1]
    with np.errstate(invalid="ignore"):
        fired = mean > p("max_pct")
    return Occurrences.of(np.arange(ctx.cohort.n), np.where(fired, LOW, NONE), ctx.grid.bounds[-2], mean)


@rule(
    "A6",
    "Reliever use increasing",
    conditions=("asthma",),
    reads=(RELIEVER,),
    window_days=10,
    lookback_h=36,
    hysteresis_h=48,
    params={"rise_puffs": 4, "days_per_week": 2},
    severities="+≥ 4 puffs/day on 2 days vs the 7 days before medium; use on > 2 days/week info",
)
def a6(ctx: Context, p: Params) -> Occurrences:
    tot, cnt = ctx.daily_sum(RELIEVER)
    day_sum = np.where(cnt > 0, tot, np.nan)
    _, ft = ctx.daily_first(RELIEVER)
    base = rolling_mean(day_sum, 2, 8, 4)
    r = p("rise_puffs")[:, None]
    used = np.nan_to_num(day_sum, nan=0.0) > 0
    week = np.zeros(used.shape)
    for k in range(7):
        week[:, k:] += used[:, : used.shape[1] - k]
    with np.errstate(invalid="ignore"):
        rise = (day_sum - base >= r) & (shift_cols(day_sum, 1) - base >= r)
        sev = max_severity((used & (week > p("days_per_week")[:, None]), INFO), (rise, MEDIUM))
    return Occurrences.from_grid(sev, ft, day_sum, 9.0)
