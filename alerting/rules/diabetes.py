"""Diabetes rules D1–D10 (CLINICAL_RULES.md, "Diabetes")."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from alerting.rules.common import (
    gap_occurrences,
)
from alerting.rules.framework import (
    CAPILLARY,
    CGM,
    CGM_MAX_GAP_S,
    CHUNK_VALUES,
    DIABETES,
    HIGH,
    INFO,
    LOOKBACK_MARGIN_H,
    LOW,
    MEDIUM,
    NONE,
    Context,
    Occurrences,
    Params,
    max_severity,
    rule,
)
from alerting.series import (
    F64,
    I64,
    SEC_PER_DAY,
    SEC_PER_MIN,
    B,
    Series,
    lag_index,
    run_start_times,
    segment_chunks,
    segment_sums,
)

# Episode rules look back 24 h; 4 h more history lets an episode that began earlier be measured.
CGM_RECENT_H = 28.0


def _cgm_episode(ctx: Context, p: Params, above: bool, strictly_longer: bool, sev: int) -> Occurrences:
    s = ctx.s(CGM, CGM_RECENT_H)
    th = p("threshold_mmol_l")[s.pat]
    cond = s.v > th if above else s.v < th
    since = run_start_times(s, cond, CGM_MAX_GAP_S)
    dur = s.t - since
    need = p("min_duration_min")[s.pat] * SEC_PER_MIN
    with np.errstate(invalid="ignore"):
        fired = cond & ((dur > need) if strictly_longer else (dur >= need))
    return Occurrences.of(s.pat, np.where(fired, sev, NONE), s.t, s.v, since)


@rule(
    "D1",
    "Hypoglycaemia level 1 (CGM < 3.9 mmol/L ≥ 15 min)",
    conditions=DIABETES,
    reads=(CGM,),
    window_days=1,
    lookback_h=24,
    hysteresis_h=0.25,  # the episode ends after ≥ 15 min ≥ 3.9
    params={"threshold_mmol_l": 3.9, "min_duration_min": 15},
    severities="medium",
)
def d1(ctx: Context, p: Params) -> Occurrences:
    return _cgm_episode(ctx, p, above=False, strictly_longer=False, sev=MEDIUM)


@rule(
    "D2",
    "Hypoglycaemia level 2 (CGM < 3.0 mmol/L ≥ 15 min)",
    conditions=DIABETES,
    reads=(CGM,),
    window_days=1,
    lookback_h=24,
    hysteresis_h=0.25,
    params={"threshold_mmol_l": 3.0, "min_duration_min": 15},
    severities="high",
    safety_net=HIGH,
)
def d2(ctx: Context, p: Params) -> Occurrences:
    return _cgm_episode(ctx, p, above=False, strictly_longer=False, sev=HIGH)


# A level 2 episode ends as a hypoglycaemic event does (ATTD 2019 consensus, Battelino et al.):
# when glucose is back at or above 3.9 for at least 15 minutes. Onsets closer together than this
# are one troubled period (a CGM bobbing around 3.0 is not two lows), counted once.
D11_SAME_EPISODE_S = 2 * 3600.0


def _level_2_onsets(ctx: Context, p: Params, hours: float) -> tuple[I64, F64]:
    """(patient, time) of each level 2 onset in the last ``hours``, sorted: a CGM run < 3.0
    reaching ``min_duration_min``, or a capillary reading < 3.0; onsets within
    ``D11_SAME_EPISODE_S`` of the previous one are the same episode and dropped."""
    # Only readings below the threshold can start or continue a run, and they are ~1 % of a
    # week of CGM: find them with one comparison over the (uncopied) series, then build the
    # runs among them; a run continues where the next candidate is the next reading.
    s = ctx.s(CGM)
    th = p("threshold_mmol_l")
    cand = np.flatnonzero(s.v < float(np.max(th, initial=-np.inf)))
    cand = cand[(s.v[cand] < th[s.pat[cand]]) & (s.t[cand] > ctx.now - hours * 3600.0)]
    pc, tc = s.pat[cand], s.t[cand]
    cont = np.zeros(len(cand), dtype=bool)
    if len(cand) > 1:
        cont[1:] = (cand[1:] == cand[:-1] + 1) & (pc[1:] == pc[:-1]) & (np.diff(tc) <= CGM_MAX_GAP_S)
    run_start = np.maximum.accumulate(np.where(cont, -1, np.arange(len(cand)))) if len(cand) else cand
    qual = tc - tc[run_start] >= p("min_duration_min")[pc] * SEC_PER_MIN
    first = qual.copy()
    if len(cand) > 1:
        # The first qualifying reading of its run: the one before is not a qualifying one of the run.
        first[1:] &= ~(cont[1:] & qual[:-1])
    c = ctx.s(CAPILLARY, hours)
    cap = c.v < p("threshold_mmol_l")[c.pat]
    pat = np.concatenate([pc[first], c.pat[cap]])
    t = np.concatenate([tc[first], c.t[cap]])
    order = np.lexsort((t, pat))
    pat, t = pat[order], t[order]
    new = np.ones(len(t), dtype=bool)
    if len(t) > 1:
        new[1:] = (pat[1:] != pat[:-1]) | (t[1:] - t[:-1] > D11_SAME_EPISODE_S)
    return pat[new], t[new]


@rule(
    "D11",
    "Recurrent level 2 hypoglycaemia (≥ 3 episodes < 3.0 mmol/L in 7 days)",
    conditions=DIABETES,
    reads=(CGM, CAPILLARY),
    window_days=7,
    lookback_h=24,
    hysteresis_h=0.25,
    params={"threshold_mmol_l": 3.0, "min_duration_min": 15, "episodes": 3, "days": 7},
    severities=(
        "high, at the onset of the 3rd (and each later) level 2 episode within `days`: CGM < 3.0 for"
        " 15 min or a capillary < 3.0; onsets within 2 h are one episode. Value: the episodes counted"
    ),
)
def d11(ctx: Context, p: Params) -> Occurrences:
    days = p("days")
    pat, t = _level_2_onsets(ctx, p, float(np.max(days, initial=7.0)) * 24 + LOOKBACK_MARGIN_H)
    if len(t) == 0:
        return Occurrences.of(pat, NONE, t, t)
    # Episodes of the same patient within ``days`` before each onset, itself included: one
    # searchsorted over a (patient, time) key, monotone because onsets are sorted.
    t0 = float(t.min())
    span = float(t.max()) - t0 + float(np.max(days)) * SEC_PER_DAY + 1.0
    key = pat.astype(np.float64) * span + (t - t0)
    count = np.arange(len(t)) - np.searchsorted(key, key - days[pat] * SEC_PER_DAY, side="left") + 1
    fired = count >= p("episodes")[pat]
    return Occurrences.of(pat, np.where(fired, HIGH, NONE), t, count.astype(np.float64))


@rule(
    "D3",
    "Prolonged hypoglycaemia (CGM < 3.9 mmol/L > 120 min)",
    conditions=DIABETES,
    reads=(CGM,),
    window_days=1,
    lookback_h=24,
    hysteresis_h=0.25,
    params={"threshold_mmol_l": 3.9, "min_duration_min": 120},
    severities="high",
)
def d3(ctx: Context, p: Params) -> Occurrences:
    return _cgm_episode(ctx, p, above=False, strictly_longer=True, sev=HIGH)


@rule(
    "D4",
    "Low capillary glucose",
    conditions=DIABETES,
    reads=(CAPILLARY,),
    window_days=1,
    lookback_h=24,
    hysteresis_h=4,
    params={"high_below_mmol_l": 3.0, "medium_below_mmol_l": 3.9},
    severities="< 3.0 high; < 3.9 medium",
)
def d4(ctx: Context, p: Params) -> Occurrences:
    s = ctx.s(CAPILLARY, LOOKBACK_MARGIN_H)
    sev = max_severity((s.v < p("medium_below_mmol_l")[s.pat], MEDIUM), (s.v < p("high_below_mmol_l")[s.pat], HIGH))
    return Occurrences.of(s.pat, sev, s.t, s.v)


_D6_FIXED = {"slope_window_min": 15}


@rule(
    "D6",
    "Rapidly falling glucose (CGM 15-min slope)",
    conditions=DIABETES,
    reads=(CGM,),
    window_days=1,
    lookback_h=6,
    hysteresis_h=0.5,
    params={"low_fall_mmol_l_min": 0.11, "medium_fall_mmol_l_min": 0.17},
    fixed=_D6_FIXED,
    severities="falling ≥ 0.11 mmol/L/min low; ≥ 0.17 medium",
)
def d6(ctx: Context, p: Params) -> Occurrences:
    s = ctx.s(CGM, CGM_RECENT_H)
    # The slope window is a rule constant here (per-patient lags would need one search per value).
    ok, rate, jj = _cgm_rate(s, float(_D6_FIXED["slope_window_min"]))
    fall = -rate  # mmol/L/min, + falling
    with np.errstate(invalid="ignore"):
        sev = max_severity(
            (fall >= p("low_fall_mmol_l_min")[s.pat], LOW), (fall >= p("medium_fall_mmol_l_min")[s.pat], MEDIUM)
        )
    return Occurrences.of(s.pat, sev, s.t, fall, np.where(ok, s.t[jj], s.t))


def _cgm_rate(s: Series, lag_min: float) -> tuple[B, F64, I64]:
    """Rate of change (mmol/L/min, + rising) vs the reading lag_min..lag_min+5 min earlier."""
    lag = lag_min * SEC_PER_MIN
    j = lag_index(s, lag, lag + 5 * SEC_PER_MIN)
    ok = j >= 0
    jj = np.maximum(j, 0)
    ok &= np.isfinite(s.v) & np.isfinite(s.v[jj])  # a censored value has no slope
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(ok, (s.v - s.v[jj]) / ((s.t - s.t[jj]) / SEC_PER_MIN), np.nan)
    return ok, rate, jj


@rule(
    "D5",
    "Predicted urgent low in 20 min (CGM linear forecast)",
    conditions=DIABETES,
    reads=(CGM,),
    window_days=1,
    lookback_h=2,
    hysteresis_h=0.5,
    params={"predicted_at_or_below_mmol_l": 3.1, "horizon_min": 20, "quiet_after_low_min": 60},
    severities=(
        "high (routed to the patient); linear extrapolation of the 15-min slope, confirmed by the last"
        " 5 minutes' slope; only while falling, not already < 3.9 and not within an hour of a reading < 3.9"
    ),
)
def d5(ctx: Context, p: Params) -> Occurrences:
    s = ctx.s(CGM, CGM_RECENT_H)
    ok, rate, jj = _cgm_rate(s, 15)
    ok5, rate5, _ = _cgm_rate(s, 5)
    horizon = p("horizon_min")[s.pat]
    limit = p("predicted_at_or_below_mmol_l")[s.pat]
    # A low in the last hour (an episode recovering, or one D1/D2 already report): no forecast.
    last_low = np.maximum.accumulate(np.where(s.v < 3.9, np.arange(len(s)), -1)) if len(s) else np.zeros(0, int)
    had_low = (last_low >= 0) & (s.pat[np.maximum(last_low, 0)] == s.pat)
    since_low = np.where(had_low, s.t - s.t[np.maximum(last_low, 0)], np.inf)
    with np.errstate(invalid="ignore"):
        predicted = s.v + rate * horizon
        # A real projected crossing: the 15-min trend and the latest 5 minutes both project to
        # the limit. A post-meal fall flattening out towards its nadir fails the second test.
        fired = (
            ok
            & ok5
            & (rate < 0)
            & (s.v >= 3.9)
            & (predicted <= limit)
            & (s.v + rate5 * horizon <= limit)
            & ~(since_low < p("quiet_after_low_min")[s.pat] * SEC_PER_MIN)
        )
    return Occurrences.of(s.pat, np.where(fired, HIGH, NONE), s.t, predicted, np.where(ok, s.t[jj], s.t))


@rule(
    "D7",
    "Hyperglycaemia (CGM > 13.9 mmol/L)",
    conditions=DIABETES,
    reads=(CGM,),
    window_days=1,
    lookback_h=24,
    hysteresis_h=0.25,
    params={
        "threshold_mmol_l": 13.9,
        "min_duration_min": 15,
        "type1_duration_min": 120,
        "type2_duration_min": 120,
        "sustained_duration_min": 360,
    },
    severities=(
        "≥ 15 min low; ≥ 2 h medium (ketone check and a correction dose: both the patient's);"
        " ≥ 6 h high (the corrections have not worked: staff)"
    ),
)
def d7(ctx: Context, p: Params) -> Occurrences:
    s = ctx.s(CGM, CGM_RECENT_H)
    cond = s.v > p("threshold_mmol_l")[s.pat]
    since = run_start_times(s, cond, CGM_MAX_GAP_S)
    dur = s.t - since
    t1 = ctx.cohort.has("diabetes_t1")[s.pat]
    # A post-meal peak above 13.9 for a quarter of an hour is everyday diabetes; hours above
    # it are a missed dose or illness in either type (the prolonged episodes staff act on).
    long_min = np.where(t1, p("type1_duration_min")[s.pat], p("type2_duration_min")[s.pat])
    with np.errstate(invalid="ignore"):
        sev = max_severity(
            (cond & (dur >= p("min_duration_min")[s.pat] * SEC_PER_MIN), LOW),
            (cond & (dur >= long_min * SEC_PER_MIN), MEDIUM),
            (cond & (dur >= p("sustained_duration_min")[s.pat] * SEC_PER_MIN), HIGH),
        )
    return Occurrences.of(s.pat, sev, s.t, s.v, since)


def _cgm_14d(ctx: Context) -> tuple[Series, F64]:
    def make() -> tuple[Series, F64]:
        w = ctx.s(CGM).between(ctx.now - 14 * SEC_PER_DAY, ctx.now)
        return w, segment_sums(w, ctx.cohort.n, None)

    return ctx.cached("cgm14", make)


def _cgm_users(ctx: Context) -> B:
    return ctx.cohort.expects("glucose_cgm") | (ctx.last_time(CGM) > 0)


def _cgm_sufficient(ctx: Context, expected_interval_min: F64, min_pct: F64) -> tuple[B, F64]:
    _, count = _cgm_14d(ctx)
    expected = 14 * 24 * 60 / expected_interval_min
    pct = count / expected * 100
    return pct >= min_pct, pct


@rule(
    "D9",
    "CGM data insufficient for 14-day metrics",
    conditions=DIABETES,
    reads=(CGM,),
    window_days=14,
    lookback_h=24,
    hysteresis_h=0,
    params={"expected_interval_min": 5, "min_pct": 70},
    severities="info",
)
def d9(ctx: Context, p: Params) -> Occurrences:
    ok, pct = _cgm_sufficient(ctx, p("expected_interval_min"), p("min_pct"))
    fire = _cgm_users(ctx) & ~ok
    return Occurrences.of(np.arange(ctx.cohort.n), np.where(fire, INFO, NONE), ctx.grid.bounds[-2], pct)


@rule(
    "D8",
    "14-day CGM metrics outside targets (TIR/TBR/TAR/CV)",
    conditions=DIABETES,
    reads=(CGM,),
    window_days=14,
    lookback_h=24,
    # A 14-day metric moves slowly and hovers near its target: resolution is suggested after 3
    # days in target, not the first (the reviewed card then absorbs the next day out of target).
    hysteresis_h=72,
    params={
        "tir_min_pct": 70,
        "tbr_3_9_max_pct": 4,
        "tbr_3_0_max_pct": 1,
        "tar_10_max_pct": 25,
        "tar_13_9_max_pct": 5,
        "cv_max_pct": 36,
        # The same sufficiency test as D9, with D8's own parameters.
        "expected_interval_min": 5,
        "min_data_pct": 70,
    },
    severities="low (weekly review); only with ≥ 70 % of the expected readings (as D9)",
)
def d8(ctx: Context, p: Params) -> Occurrences:
    w, count = _cgm_14d(ctx)
    n = ctx.cohort.n

    # Band counts and sums per patient, in chunks of whole patients: a fortnight of CGM for a
    # region is tens of millions of values, and temporaries the size of the whole series are
    # slow to allocate (page faults); chunk-sized ones are recycled by the allocator.
    by_band = np.zeros((n, 5))
    sums = np.zeros((n, 3))  # numeric count, sum, sum of squares
    starts_all = np.searchsorted(w.pat, np.arange(n + 1))
    for lo, hi, a, b in segment_chunks(w, n, CHUNK_VALUES):
        v = w.v[a:b]
        # Patients of the chunk with readings: their segments are contiguous, so reduceat
        # sums each one without a per-reading patient index.
        present = lo + np.flatnonzero(count[lo:hi] > 0)
        if len(present) == 0:
            continue
        starts = starts_all[present] - a

        def seg(x: NDArray[Any], starts: I64 = starts) -> F64:
            return np.add.reduceat(x, starts, dtype=np.float64)

        # Bands <3.0, 3.0-3.9, 3.9-10, 10-13.9, >13.9; censored LOW/HIGH fall in the outer ones.
        below30, below39 = seg(v < 3.0), seg(v < 3.9)
        above10, above139 = seg(v > 10.0), seg(v > 13.9)
        total = count[present]
        by_band[present] = np.stack(
            [below30, below39 - below30, total - below39 - above10, above10 - above139, above139], axis=1
        )
        # CV from the numeric values only: a censored LOW/HIGH has no magnitude.
        cens = np.isinf(v)
        fv = np.where(cens, 0.0, v)
        sums[present, 0] = total - seg(cens)
        sums[present, 1] = seg(fv)
        sums[present, 2] = seg(fv * fv)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = by_band / count[:, None] * 100
        k = sums[:, 0]
        mean = sums[:, 1] / k
        var = (sums[:, 2] - k * mean * mean) / (k - 1)
        cv = np.sqrt(np.maximum(var, 0.0)) / mean * 100
    tbr30, tbr39 = frac[:, 0], frac[:, 0] + frac[:, 1]
    tir = frac[:, 2]
    tar10, tar139 = frac[:, 3] + frac[:, 4], frac[:, 4]
    sufficient, _ = _cgm_sufficient(ctx, p("expected_interval_min"), p("min_data_pct"))
    with np.errstate(invalid="ignore"):
        breach = (
            (tir < p("tir_min_pct"))
            | (tbr39 >= p("tbr_3_9_max_pct"))
            | (tbr30 >= p("tbr_3_0_max_pct"))
            | (tar10 >= p("tar_10_max_pct"))
            | (tar139 >= p("tar_13_9_max_pct"))
            | (cv > p("cv_max_pct"))
        )
    fire = sufficient & breach & (count > 0)
    return Occurrences.of(np.arange(n), np.where(fire, LOW, NONE), ctx.grid.bounds[-2], tir)


@rule(
    "D10",
    "CGM data gap",
    conditions=DIABETES,
    reads=(CGM,),
    window_days=28,
    lookback_h=24 * 365,
    hysteresis_h=0,
    params={"info_after_h": 24, "low_after_h": 72},
    severities="no data > 24 h info; > 72 h low",
)
def d10(ctx: Context, p: Params) -> Occurrences:
    return gap_occurrences(ctx, ctx.last_time(CGM), _cgm_users(ctx), p("info_after_h"), p("low_after_h"))
