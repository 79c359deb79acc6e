"""Hypertension rules H1–H6 (CLINICAL_RULES.md, "Hypertension")."""

from __future__ import annotations

import numpy as np

from alerting.rules.common import (
    bp_sessions,
    symptom_days,
)
from alerting.rules.framework import (
    CRITICAL,
    DIASTOLIC,
    HIGH,
    INFO,
    LOW,
    MEDIUM,
    NONE,
    SYMPTOM_HTN,
    SYSTOLIC,
    Context,
    Occurrences,
    Params,
    max_severity,
    rule,
)
from alerting.series import (
    F64,
    rolling_median,
)


def _home_bp_week(ctx: Context) -> tuple[F64, F64, F64]:
    """Mean systolic, diastolic and count over the last 7 days, day 1 of those 7 discarded."""
    return ctx.cached("bpweek", lambda: _home_bp_week_uncached(ctx))


def _home_bp_week_uncached(ctx: Context) -> tuple[F64, F64, F64]:
    n = ctx.cohort.n
    out = []
    cnt = np.zeros(n)
    for key in (SYSTOLIC, DIASTOLIC):
        day_tot, c = ctx.daily_sum(key)
        cols = slice(ctx.today - 5, ctx.today + 1)
        tot = day_tot[:, cols].sum(axis=1)
        k = c[:, cols].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(np.where(k > 0, tot / np.maximum(k, 1), np.nan))
        if key == SYSTOLIC:
            cnt = k
    return out[0], out[1], cnt


@rule(
    "H1",
    "Home BP mean ≥ 135/85 over 7 days",
    conditions=("hypertension",),
    reads=(SYSTOLIC, DIASTOLIC),
    window_days=7,
    lookback_h=24,
    hysteresis_h=24 * 3,
    params={"systolic_mmhg": 135, "diastolic_mmhg": 85, "min_readings": 12},
    severities="low; needs ≥ 12 readings (else H6)",
)
def h1(ctx: Context, p: Params) -> Occurrences:
    sys_, dia, cnt = _home_bp_week(ctx)
    with np.errstate(invalid="ignore"):
        fired = (cnt >= p("min_readings")) & ((sys_ >= p("systolic_mmhg")) | (dia >= p("diastolic_mmhg")))
    return Occurrences.of(np.arange(ctx.cohort.n), np.where(fired, LOW, NONE), ctx.grid.bounds[-2], sys_)


@rule(
    "H2",
    "Treated home BP above the care-plan target",
    conditions=("hypertension",),
    reads=(SYSTOLIC, DIASTOLIC),
    window_days=7,
    lookback_h=24,
    hysteresis_h=24 * 3,
    params={"target_systolic_mmhg": 129, "target_diastolic_mmhg": 79, "min_readings": 12},
    severities="info; default target 129/79, for patients over 70 y 139/79",
    age_defaults={"target_systolic_mmhg": (70, 139)},
)
def h2(ctx: Context, p: Params) -> Occurrences:
    sys_, dia, cnt = _home_bp_week(ctx)
    with np.errstate(invalid="ignore"):
        fired = (cnt >= p("min_readings")) & ((sys_ > p("target_systolic_mmhg")) | (dia > p("target_diastolic_mmhg")))
    return Occurrences.of(np.arange(ctx.cohort.n), np.where(fired, INFO, NONE), ctx.grid.bounds[-2], sys_)


@rule(
    "H3",
    "Very high blood pressure (mean of duplicate)",
    conditions=("hypertension",),
    reads=(SYSTOLIC, DIASTOLIC, *SYMPTOM_HTN),
    window_days=1,
    lookback_h=24,
    hysteresis_h=24,
    params={"systolic_mmhg": 180, "diastolic_mmhg": 110},
    severities="≥ 180 and/or ≥ 110 high; with symptoms reported the same day critical",
    safety_net=HIGH,
)
def h3(ctx: Context, p: Params) -> Occurrences:
    sym = symptom_days(ctx, SYMPTOM_HTN)
    parts = []
    for key, name in ((SYSTOLIC, "systolic_mmhg"), (DIASTOLIC, "diastolic_mmhg")):
        ss = bp_sessions(ctx, key)
        d = ctx.grid.day_of(ss.t)
        with_symptoms = (d >= 0) & sym[ss.pat, np.maximum(d, 0)]
        high = ss.mean >= p(name)[ss.pat]
        sev = max_severity((high, HIGH), (high & with_symptoms, CRITICAL))
        parts.append(Occurrences.of(ss.pat, sev, ss.t, ss.mean, ss.t_first))
    return Occurrences.concat(parts)


@rule(
    "H4",
    "BP ≥ 160/100 on ≥ 2 days within 7",
    conditions=("hypertension",),
    reads=(SYSTOLIC, DIASTOLIC),
    window_days=7,
    lookback_h=24 * 7,
    hysteresis_h=48,
    params={"systolic_mmhg": 160, "diastolic_mmhg": 100, "min_days": 2},
    severities="medium",
)
def h4(ctx: Context, p: Params) -> Occurrences:
    n = ctx.cohort.n
    high_day = np.zeros((n, ctx.grid.n_days), dtype=bool)
    last_t = np.full((n, ctx.grid.n_days), np.nan)
    for key, name in ((SYSTOLIC, "systolic_mmhg"), (DIASTOLIC, "diastolic_mmhg")):
        ss = bp_sessions(ctx, key, 8 * 24.0)
        hit = ss.mean >= p(name)[ss.pat]
        d = ctx.grid.day_of(ss.t)
        m = hit & (d >= 0)
        high_day[ss.pat[m], d[m]] = True
        np.fmax.at(last_t, (ss.pat[m], d[m]), ss.t[m])
    cols = slice(ctx.today - 6, ctx.today + 1)
    days = high_day[:, cols].sum(axis=1)
    latest = np.nanmax(np.where(high_day[:, cols], last_t[:, cols], -np.inf), axis=1)
    fired = days >= p("min_days")
    return Occurrences.of(np.arange(n), np.where(fired, MEDIUM, NONE), np.where(fired, latest, np.nan), days)


@rule(
    "H5",
    "Low systolic BP or a fall ≥ 20 mmHg",
    conditions=("hypertension",),
    reads=(SYSTOLIC,),
    window_days=8,
    lookback_h=24,
    hysteresis_h=24,
    params={"below_mmhg": 90, "fall_mmhg": 20},
    severities="medium (baseline: median of daily means of the 7 days before, ≥ 4 days)",
)
def h5(ctx: Context, p: Params) -> Occurrences:
    ss = bp_sessions(ctx, SYSTOLIC)
    dm, _ = ctx.daily_mean(SYSTOLIC)
    # The median, not the mean: one stressful (white-coat) day in the week lifted a mean
    # baseline by 5+ mmHg, so the next ordinary day read as a 20 mmHg "fall" (H5 was the
    # largest hypertension rule in stable patients on the hard cohort, 0.82 false/pm).
    base = rolling_median(dm, 1, 7, 4)
    d = ctx.grid.day_of(ss.t)
    b = np.where(d >= 0, base[ss.pat, np.maximum(d, 0)], np.nan)
    with np.errstate(invalid="ignore"):
        fired = (ss.mean < p("below_mmhg")[ss.pat]) | (b - ss.mean >= p("fall_mmhg")[ss.pat])
    return Occurrences.of(ss.pat, np.where(fired, MEDIUM, NONE), ss.t, ss.mean, ss.t_first)


@rule(
    "H6",
    "Too few home BP readings for a weekly mean",
    conditions=("hypertension",),
    reads=(SYSTOLIC,),
    window_days=7,
    lookback_h=24,
    hysteresis_h=0,
    params={"min_readings": 12},
    severities="info; H1/H2 means are marked insufficient",
)
def h6(ctx: Context, p: Params) -> Occurrences:
    _, _, cnt = _home_bp_week(ctx)
    users = ctx.cohort.expects("blood_pressure") | (ctx.last_time(SYSTOLIC) > 0)
    fired = users & (cnt < p("min_readings"))
    return Occurrences.of(np.arange(ctx.cohort.n), np.where(fired, INFO, NONE), ctx.grid.bounds[-2], cnt)
