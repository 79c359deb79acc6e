"""Heart-failure rules HF1–HF9 (CLINICAL_RULES.md, "Heart failure")."""

from __future__ import annotations

import numpy as np

from alerting import baselines
from alerting.rules.common import (
    bp_sessions,
    confirmed,
    pulse_daily,
    symptom_days,
    symptom_times,
)
from alerting.rules.framework import (
    BP_PULSE,
    HIGH,
    INFO,
    LOOKBACK_MARGIN_H,
    LOW,
    MEDIUM,
    NONE,
    OXIMETER_PULSE,
    SESSION_GAP_S,
    SPO2,
    SYMPTOM_HF,
    SYSTOLIC,
    WEIGHT,
    Context,
    Occurrences,
    Params,
    max_severity,
    rule,
)
from alerting.series import (
    F64,
    SEC_PER_DAY,
    B,
    Series,
    rolling_mean,
    sessions,
    shift_cols,
)


def _morning_weight(ctx: Context) -> tuple[F64, F64]:
    return ctx.daily_first(WEIGHT)


def _hf1_grid(ctx: Context, gain_kg: F64, days: int = 3) -> tuple[B, F64]:
    mw, _ = _morning_weight(ctx)
    prev = shift_cols(mw, 1)
    for k in range(2, days + 1):
        prev = np.fmin(prev, shift_cols(mw, k))
    gain = mw - prev
    with np.errstate(invalid="ignore"):
        return gain > gain_kg[:, None], gain


@rule(
    "HF1",
    "Weight gain > 2 kg in 3 days",
    conditions=("heart_failure",),
    reads=(WEIGHT,),
    window_days=4,
    lookback_h=36,
    hysteresis_h=24,
    params={"gain_kg": 2.0},
    severities="medium",
)
def hf1(ctx: Context, p: Params) -> Occurrences:
    fired, gain = _hf1_grid(ctx, p("gain_kg"))
    _, mt = _morning_weight(ctx)
    return Occurrences.from_grid(np.where(fired, MEDIUM, NONE), mt, gain, 3.5)


@rule(
    "HF2",
    "Weight gain ≥ 1.5 kg in 1 day",
    conditions=("heart_failure",),
    reads=(WEIGHT,),
    window_days=3,
    lookback_h=36,
    hysteresis_h=24,
    params={"gain_kg": 1.5},
    severities="low; medium if still there the next day",
)
def hf2(ctx: Context, p: Params) -> Occurrences:
    mw, mt = _morning_weight(ctx)
    g = p("gain_kg")[:, None]
    d1 = mw - shift_cols(mw, 1)
    with np.errstate(invalid="ignore"):
        day_gain = d1 >= g
        persists = (shift_cols(d1, 1) >= g) & (mw - shift_cols(mw, 2) >= g)
    sev = max_severity((day_gain, LOW), (persists, MEDIUM))
    return Occurrences.from_grid(sev, mt, np.where(persists, mw - shift_cols(mw, 2), d1), 2.5)


_HF3_FIXED = {"min_days": 3}


@rule(
    "HF3",
    "7-day mean weight > dry weight + 2 kg",
    conditions=("heart_failure",),
    reads=(WEIGHT,),
    window_days=7,
    lookback_h=36,
    hysteresis_h=24,
    params={"excess_kg": 2.0},
    fixed=_HF3_FIXED,
    severities="medium (needs dry weight in the care plan)",
)
def hf3(ctx: Context, p: Params) -> Occurrences:
    mw, mt = _morning_weight(ctx)
    mean7 = rolling_mean(mw, 0, 6, int(_HF3_FIXED["min_days"]))
    excess = mean7 - ctx.cohort.dry_weight_kg[:, None]
    with np.errstate(invalid="ignore"):
        fired = (excess > p("excess_kg")[:, None]) & ~np.isnan(mw)
    return Occurrences.from_grid(np.where(fired, MEDIUM, NONE), mt, excess, 7.0)


_HF4_FIXED = {
    "min_sigma_kg": 0.3,
    "cusum_h": 4.0,
    "cusum_k": 0.5,
    "ewma_lambda": 0.2,
    "macd_sd": 2.0,
    # Arming: a control chart on a thin or unsteady baseline alarms on noise. Two thirds of
    # the 21 baseline days weighed, and a spread a stable patient's scale gives (a scale
    # shared with someone else, or a patient already decompensating, spreads wider).
    "min_baseline_days": 14,
    "max_sigma_kg": 1.5,
}


@rule(
    "HF4",
    "Weight out of statistical control vs personal baseline (EWMA/CUSUM/MACD)",
    conditions=("heart_failure",),
    reads=(WEIGHT,),
    window_days=28,
    lookback_h=36,
    hysteresis_h=48,
    params={},
    fixed=_HF4_FIXED,
    severities="medium; arms with ≥ 14 weighed days in days −28..−8 and a baseline spread σ ≤ 1.5 kg",
)
def hf4(ctx: Context, p: Params) -> Occurrences:
    mw, mt = _morning_weight(ctx)
    d = _HF4_FIXED
    # The control-chart constants are cohort-wide (per-patient charts would need per-patient loops);
    # the σ floor stops a perfectly stable weight from making 0.1 kg an alarm.
    base = baselines.median_mad(mw, min_points=int(d["min_baseline_days"]), min_sigma=float(d["min_sigma_kg"]))
    with np.errstate(invalid="ignore"):
        armed = base.sufficient & (base.sigma <= d["max_sigma_kg"])
    alarm = (
        baselines.ewma_alarm(mw, base, lam=float(d["ewma_lambda"]))
        | baselines.cusum_alarm(mw, base, k=float(d["cusum_k"]), h=float(d["cusum_h"]))
        | baselines.macd_alarm(mw, n_sd=float(d["macd_sd"]))
    ) & armed[:, None]
    return Occurrences.from_grid(np.where(alarm, MEDIUM, NONE), mt, mw - base.median[:, None], 8.0)


@rule(
    "HF5",
    "Low systolic blood pressure",
    conditions=("heart_failure",),
    reads=(SYSTOLIC,),
    window_days=1,
    lookback_h=24,
    hysteresis_h=24,
    params={"high_below_mmhg": 90, "medium_below_mmhg": 100},
    severities="mean of duplicate < 90 high; < 100 with a worse-symptom answer the same day medium",
)
def hf5(ctx: Context, p: Params) -> Occurrences:
    ss = bp_sessions(ctx, SYSTOLIC)
    sym = symptom_days(ctx, SYMPTOM_HF)
    d = ctx.grid.day_of(ss.t)
    with_sym = (d >= 0) & sym[ss.pat, np.maximum(d, 0)]
    sev = max_severity(
        (with_sym & (ss.mean < p("medium_below_mmhg")[ss.pat]), MEDIUM), (ss.mean < p("high_below_mmhg")[ss.pat], HIGH)
    )
    return Occurrences.of(ss.pat, sev, ss.t, ss.mean, ss.t_first)


@rule(
    "HF6",
    "Resting pulse out of range or rising",
    conditions=("heart_failure",),
    reads=(BP_PULSE, OXIMETER_PULSE),
    window_days=10,
    lookback_h=24,
    hysteresis_h=24,
    params={"medium_above_bpm": 100, "high_at_or_below_bpm": 40, "high_at_or_above_bpm": 131, "rise_bpm": 10},
    severities="> 100 medium; ≤ 40 or ≥ 131 high; +10 bpm vs 7-day baseline on 2 days low",
)
def hf6(ctx: Context, p: Params) -> Occurrences:
    parts = []
    for s in ctx.pulses(LOOKBACK_MARGIN_H):
        ss = sessions(s, SESSION_GAP_S)
        sev = max_severity(
            (ss.mean > p("medium_above_bpm")[ss.pat], MEDIUM),
            ((ss.mean <= p("high_at_or_below_bpm")[ss.pat]) | (ss.mean >= p("high_at_or_above_bpm")[ss.pat]), HIGH),
        )
        parts.append(Occurrences.of(ss.pat, sev, ss.t, ss.mean, ss.t_first))
    parts.append(_rise_two_days(ctx, ctx.pulses(), p("rise_bpm"), LOW))
    return Occurrences.concat(parts)


def _rise_two_days(ctx: Context, sources: tuple[Series, Series], rise: F64, sev: int) -> Occurrences:
    """Daily mean ≥ baseline + rise on two consecutive days; baseline = mean of the 7 days before them."""
    dm, ft = pulse_daily(ctx, sources)
    base = rolling_mean(dm, 2, 8, 4)
    r = rise[:, None]
    with np.errstate(invalid="ignore"):
        fired = (dm - base >= r) & (shift_cols(dm, 1) - base >= r)
    return Occurrences.from_grid(np.where(fired, sev, NONE), ft, dm - base, 9.0)


@rule(
    "HF7",
    "Low SpO2 (confirmed)",
    conditions=("heart_failure",),
    reads=(SPO2,),
    window_days=1,
    lookback_h=24,
    hysteresis_h=24,
    params={"high_at_or_below_pct": 91},
    severities="≤ 91 % confirmed by a repeat reading within 15 min: high",
    safety_net=HIGH,
    safety_net_excludes=("copd",),  # C1 judges SpO2 against the COPD targets,
)
def hf7(ctx: Context, p: Params) -> Occurrences:
    s = ctx.s(SPO2, LOOKBACK_MARGIN_H)
    ok, level = confirmed(s)
    with np.errstate(invalid="ignore"):
        sev = np.where(ok & (level <= p("high_at_or_below_pct")[s.pat]), HIGH, NONE)
    return Occurrences.of(s.pat, sev, s.t, level)


@rule(
    "HF8",
    "Worse heart-failure symptoms (daily form)",
    conditions=("heart_failure",),
    reads=SYMPTOM_HF,
    window_days=4,
    lookback_h=36,
    hysteresis_h=24,
    params={"weight_gain_kg": 2.0},  # the HF1 gain that turns worse symptoms into high
    severities="worse breathlessness, orthopnoea or oedema medium; with HF1 the same day high",
)
def hf8(ctx: Context, p: Params) -> Occurrences:
    sym = symptom_days(ctx, SYMPTOM_HF)
    hf1_fired, _ = _hf1_grid(ctx, p("weight_gain_kg"))
    sev = max_severity((sym, MEDIUM), (sym & hf1_fired, HIGH))
    # The value says how well the worse answers confirm each other: the larger of the items
    # answered "worse" that day and the days in a row (up to that day) with a worse answer.
    # A single worse item on a single day (1) goes to the patient (events.PATIENT_BELOW_VALUE);
    # two items, or a second day, reach staff.
    items = sum(symptom_days(ctx, SYMPTOM_HF[k : k + 1]).astype(np.float64) for k in range(len(SYMPTOM_HF)))
    run = np.zeros_like(items)
    for d in range(sym.shape[1]):
        run[:, d] = np.where(sym[:, d], (run[:, d - 1] if d else 0.0) + 1.0, 0.0)
    return Occurrences.from_grid(sev, symptom_times(ctx, SYMPTOM_HF), np.maximum(items, run))


@rule(
    "HF9",
    "Missing daily weight",
    conditions=("heart_failure",),
    reads=(WEIGHT,),
    window_days=28,
    lookback_h=24,
    hysteresis_h=0,
    params={"info_days": 2, "low_days": 3},
    severities="2 days info (patient reminder); ≥ 3 days low",
)
def hf9(ctx: Context, p: Params) -> Occurrences:
    mw, _ = _morning_weight(ctx)
    have = ~np.isnan(mw)
    # Days without a weight counted back from today: the morning weight is due in the
    # morning, so by the time anyone reads the alert today's is missing too.
    run = np.cumprod(~have[:, ::-1], axis=1).sum(axis=1).astype(np.float64)
    # Not the days before monitoring began (today counts as a day once it has begun).
    began = ctx.cohort.since_monitoring(np.full(ctx.cohort.n, -np.inf))
    with np.errstate(invalid="ignore"):
        days_monitored = np.ceil((ctx.now - began) / SEC_PER_DAY)
    run = np.fmin(run, days_monitored)
    sev = max_severity((run >= p("info_days"), INFO), (run >= p("low_days"), LOW))
    return Occurrences.of(np.arange(ctx.cohort.n), sev, ctx.grid.bounds[-2], run)
