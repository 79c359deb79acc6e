"""COPD rules C1–C7 (CLINICAL_RULES.md, "COPD")."""

from __future__ import annotations

import numpy as np

from alerting import baselines
from alerting.rules.common import (
    confirmed,
    pulse_baseline,
    pulse_daily,
    spo2_target_low,
    symptom_days,
    symptom_times,
)
from alerting.rules.framework import (
    BP_PULSE,
    CAT,
    CRITICAL,
    FEV1,
    HIGH,
    INFO,
    LOOKBACK_MARGIN_H,
    LOW,
    MEDIUM,
    NONE,
    OXIMETER_PULSE,
    PEF,
    SPO2,
    SYMPTOM_COPD,
    Context,
    Occurrences,
    Params,
    max_severity,
    rule,
)
from alerting.series import (
    rolling_mean,
)


@rule(
    "C1",
    "Low SpO2 at rest (confirmed)",
    conditions=("copd",),
    reads=(SPO2,),
    window_days=1,
    lookback_h=24,
    hysteresis_h=24,
    params={"medium_below_pct": 92, "medium_below_pct_hypercapnic": 88, "high_below_pct": 88, "critical_below_pct": 85},
    severities=(
        "< 92 % medium (< 88 % on the 88–92 % target: hypercapnic care plan or own baseline ≤ 92 %);"
        " < 88 % high; < 85 % critical"
    ),
    safety_net=CRITICAL,
)
def c1(ctx: Context, p: Params) -> Occurrences:
    s = ctx.s(SPO2, LOOKBACK_MARGIN_H)
    ok, level = confirmed(s)
    med = np.where(spo2_target_low(ctx), p("medium_below_pct_hypercapnic"), p("medium_below_pct"))[s.pat]
    with np.errstate(invalid="ignore"):
        sev = max_severity(
            (ok & (level < med), MEDIUM),
            (ok & (level < p("high_below_pct")[s.pat]), HIGH),
            (ok & (level < p("critical_below_pct")[s.pat]), CRITICAL),
        )
    return Occurrences.of(s.pat, sev, s.t, level)


@rule(
    "C2",
    "SpO2 drop vs 7-day baseline",
    conditions=("copd",),
    reads=(SPO2,),
    window_days=8,
    lookback_h=36,
    hysteresis_h=24,
    params={"drop_points": 4},
    severities="daily mean ≥ 4 points below the mean of the 7 days before: medium",
)
def c2(ctx: Context, p: Params) -> Occurrences:
    dm, _ = ctx.daily_mean(SPO2)
    _, ft = ctx.daily_first(SPO2)
    drop = rolling_mean(dm, 1, 7, 4) - dm
    with np.errstate(invalid="ignore"):
        fired = drop >= p("drop_points")[:, None]
    return Occurrences.from_grid(np.where(fired, MEDIUM, NONE), ft, drop, 8.0)


_C3_FIXED = {"min_sigma_spo2": 0.5, "min_sigma_pulse": 2.0}


@rule(
    "C3",
    "Combined SpO2 fall and pulse rise vs personal baseline (z-scores)",
    conditions=("copd",),
    reads=(SPO2, BP_PULSE, OXIMETER_PULSE),
    window_days=28,
    lookback_h=36,
    hysteresis_h=48,
    params={"min_score": 1.0},
    fixed=_C3_FIXED,
    severities="medium when mean(z(SpO2 fall), z(pulse rise)) ≥ 1; baselines: median/MAD of days −28..−8 (≥ 7 days)",
)
def c3(ctx: Context, p: Params) -> Occurrences:
    spo2, _ = ctx.daily_mean(SPO2)
    _, ft = ctx.daily_first(SPO2)
    pulse, _ = pulse_daily(ctx, ctx.pulses())
    d = _C3_FIXED
    # σ floors: a perfectly flat baseline must not turn a 1 % dip into a large z.
    bs = baselines.median_mad(spo2, min_sigma=float(d["min_sigma_spo2"]))
    bp = baselines.median_mad(pulse, min_sigma=float(d["min_sigma_pulse"]))
    with np.errstate(invalid="ignore"):
        z_fall = (bs.median[:, None] - spo2) / bs.sigma[:, None]
        z_rise = (pulse - bp.median[:, None]) / bp.sigma[:, None]
        score = (z_fall + z_rise) / 2
        fired = score >= p("min_score")[:, None]
    fired[:, : ctx.today - 6] = False  # the monitoring week, not the baseline period
    return Occurrences.from_grid(np.where(fired, MEDIUM, NONE), ft, score, 1.0)


@rule(
    "C4",
    "Resting pulse high or rising (COPD)",
    conditions=("copd",),
    reads=(BP_PULSE, OXIMETER_PULSE),
    window_days=8,
    lookback_h=24,
    hysteresis_h=24,
    params={"at_or_above_bpm": 95, "rise_bpm": 10},
    severities=(
        "≥ 95 bpm (or, when the patient's own resting pulse is known, ≥ 10 above it if that is higher)"
        " or ≥ 10 bpm above the mean of the 7 days before: low"
    ),
)
def c4(ctx: Context, p: Params) -> Occurrences:
    dm, _ = pulse_daily(ctx, ctx.pulses())
    base = rolling_mean(dm, 1, 7, 4)
    # A patient who lives at 95 must not alert at every measurement: the absolute limit
    # is raised to the patient's own resting pulse + the rise, never lowered.
    limit = np.fmax(p("at_or_above_bpm"), pulse_baseline(ctx) + p("rise_bpm"))
    parts = []
    for s in ctx.pulses(LOOKBACK_MARGIN_H):
        d = ctx.grid.day_of(s.t)
        b = np.where(d >= 0, base[s.pat, np.maximum(d, 0)], np.nan)
        with np.errstate(invalid="ignore"):
            fired = (s.v >= limit[s.pat]) | (s.v - b >= p("rise_bpm")[s.pat])
        parts.append(Occurrences.of(s.pat, np.where(fired, LOW, NONE), s.t, s.v))
    return Occurrences.concat(parts)


_C5_FIXED = {"min_points": 7}


@rule(
    "C5",
    "FEV1/PEF 7-day mean below personal mean − 1.645 SD",
    conditions=("copd",),
    reads=(FEV1, PEF),
    window_days=28,
    lookback_h=36,
    hysteresis_h=48,
    params={"n_sd": 1.645},
    fixed=_C5_FIXED,
    severities="medium; needs ≥ 7 days in days −28..−8",
)
def c5(ctx: Context, p: Params) -> Occurrences:
    parts = []
    for key in (FEV1, PEF):
        dm, _ = ctx.daily_mean(key)
        _, ft = ctx.daily_first(key)
        block = dm[:, : ctx.today - 7]  # days −28..−8
        cnt = np.sum(~np.isnan(block), axis=1)
        ok = cnt >= int(_C5_FIXED["min_points"])
        mean = np.full(ctx.cohort.n, np.nan)
        sd = np.full(ctx.cohort.n, np.nan)
        if ok.any():
            mean[ok] = np.nanmean(block[ok], axis=1)
            sd[ok] = np.nanstd(block[ok], axis=1, ddof=1)
        roll = rolling_mean(dm, 0, 6, 3)
        limit = mean - p("n_sd") * sd
        with np.errstate(invalid="ignore"):
            fired = (roll < limit[:, None]) & ~np.isnan(dm)
        fired[:, : ctx.today - 6] = False  # only the monitoring week, not the baseline period
        parts.append(Occurrences.from_grid(np.where(fired, MEDIUM, NONE), ft, roll, 7.0))
    return Occurrences.concat(parts)


_C7_FIXED = {"min_items": 2}


@rule(
    "C7",
    "≥ 2 worse COPD symptoms on ≥ 2 consecutive days",
    conditions=("copd",),
    reads=SYMPTOM_COPD,
    window_days=3,
    lookback_h=36,
    hysteresis_h=48,
    params={},
    fixed=_C7_FIXED,
    severities="medium",
)
def c7(ctx: Context, p: Params) -> Occurrences:
    days = symptom_days(ctx, SYMPTOM_COPD, int(_C7_FIXED["min_items"]))
    prev = np.zeros_like(days)
    prev[:, 1:] = days[:, :-1]
    fired = days & prev
    return Occurrences.from_grid(
        np.where(fired, MEDIUM, NONE), symptom_times(ctx, SYMPTOM_COPD), fired.astype(np.float64)
    )


@rule(
    "C6",
    "CAT score rise vs stable baseline",
    conditions=("copd",),
    reads=(CAT,),
    window_days=28,
    lookback_h=24 * 8,
    hysteresis_h=24 * 7,
    params={"medium_rise": 4, "info_rise": 2},
    severities="+≥ 4 medium; +≥ 2 info (baseline: median of CAT scores in days −28..−8, ≥ 2 scores)",
)
def c6(ctx: Context, p: Params) -> Occurrences:
    s = ctx.s(CAT)
    dm, _ = ctx.daily_mean(CAT)
    # CAT is weekly, so the baseline needs only two scores, not the daily 7.
    base = baselines.median_mad(dm, min_points=2)
    d = ctx.grid.day_of(s.t)
    recent = d > ctx.today - 8
    rise = s.v - base.median[s.pat]
    with np.errstate(invalid="ignore"):
        sev = max_severity(
            (recent & (rise >= p("info_rise")[s.pat]), INFO), (recent & (rise >= p("medium_rise")[s.pat]), MEDIUM)
        )
    return Occurrences.of(s.pat, sev, s.t, rise)
