"""Rules across conditions: missing scheduled measurements (NODATA) and partial NEWS2."""

from __future__ import annotations

import numpy as np

from alerting.rules.common import (
    gap_occurrences,
    spo2_target_low,
)
from alerting.rules.framework import (
    BP_PULSE,
    CRITICAL,
    HIGH,
    OXIMETER_PULSE,
    SPO2,
    SYSTOLIC,
    TEMPERATURE,
    Context,
    Occurrences,
    Params,
    max_severity,
    rule,
)
from alerting.series import (
    F64,
    SEC_PER_MIN,
    B,
    last_values,
)


@rule(
    "NODATA",
    "Scheduled measurements missing",
    conditions=(),
    reads=(),
    window_days=28,
    lookback_h=24 * 365,
    hysteresis_h=0,
    params={"info_after_h": 36, "low_after_h": 72},
    severities="a scheduled kind without readings > 36 h info (patient reminder); > 72 h low (staff)",
)
def nodata(ctx: Context, p: Params) -> Occurrences:
    parts = []
    for kind, per_day in ctx.cohort.schedule.items():
        if kind == "glucose_cgm":
            continue  # D10 covers CGM gaps
        last = np.full(ctx.cohort.n, np.nan)
        for key in ctx.data:
            if key.split(".", 1)[0] == kind:
                last = np.fmax(last, ctx.last_time(key))
        parts.append(gap_occurrences(ctx, last, per_day > 0, p("info_after_h"), p("low_after_h")))
    if not parts:
        return Occurrences.of([], [], [], [])
    return Occurrences.concat(parts)


def news2_scores(pulse: F64, spo2: F64, systolic: F64, temp: F64, scale2: B) -> tuple[F64, F64]:
    """Partial NEWS2 (RCP 2017 bands, on air): total and the highest single-parameter score."""
    with np.errstate(invalid="ignore"):
        s_pulse = np.select(
            [pulse <= 40, pulse <= 50, pulse <= 90, pulse <= 110, pulse <= 130, pulse > 130], [3, 1, 0, 1, 2, 3], np.nan
        )
        s1 = np.select([spo2 <= 91, spo2 <= 93, spo2 <= 95, spo2 > 95], [3, 2, 1, 0], np.nan)
        # Scale 2 (hypercapnic target 88–92 %), scored for a patient breathing air.
        s2 = np.select([spo2 <= 83, spo2 <= 85, spo2 <= 87, spo2 > 87], [3, 2, 1, 0], np.nan)
        s_spo2 = np.where(scale2, s2, s1)
        s_sys = np.select(
            [systolic <= 90, systolic <= 100, systolic <= 110, systolic <= 219, systolic > 219], [3, 2, 1, 0, 3], np.nan
        )
        s_temp = np.select(
            [temp <= 35.0, temp <= 36.0, temp <= 38.0, temp <= 39.0, temp > 39.0], [3, 1, 0, 1, 2], np.nan
        )
    parts = np.stack([s_pulse, s_spo2, s_sys, s_temp])
    total = np.nansum(parts, axis=0)
    worst = np.nanmax(np.where(np.isnan(parts), -1, parts), axis=0)
    return total, worst


@rule(
    "NEWS2",
    "Partial NEWS2 (home; not validated for home use)",
    conditions=(),
    reads=(BP_PULSE, OXIMETER_PULSE, SPO2, SYSTOLIC, TEMPERATURE),
    window_days=1,
    lookback_h=24,
    hysteresis_h=6,
    params={"recent_min": 60},
    severities="total 5–6 or a single parameter scoring 3 high; ≥ 7 critical",
)
def news2(ctx: Context, p: Params) -> Occurrences:
    n = ctx.cohort.n
    horizon = ctx.now - p("recent_min") * SEC_PER_MIN
    vals = []
    newest = np.full(n, np.nan)
    recent_h = float(np.max(p("recent_min"))) / 60.0
    bp_pulse, ox_pulse = ctx.pulses(recent_h)
    (v1, t1), (v2, t2) = (
        last_values(bp_pulse.between(-np.inf, ctx.now), n),
        last_values(ox_pulse.between(-np.inf, ctx.now), n),
    )
    # The newer of the two devices' pulses (nan-aware).
    newer = np.nan_to_num(t2, nan=-np.inf) > np.nan_to_num(t1, nan=-np.inf)
    pulse = (np.where(newer, v2, v1), np.where(newer, t2, t1))
    others = [last_values(ctx.s(k, recent_h).between(-np.inf, ctx.now), n) for k in (SPO2, SYSTOLIC, TEMPERATURE)]
    for raw, t in [pulse, *others]:
        with np.errstate(invalid="ignore"):
            v = np.where(t > horizon, raw, np.nan)
        newest = np.fmax(newest, np.where(np.isnan(v), np.nan, t))
        vals.append(v)
    total, worst = news2_scores(vals[0], vals[1], vals[2], vals[3], spo2_target_low(ctx))
    sev = max_severity(((total >= 5) | (worst >= 3), HIGH), (total >= 7, CRITICAL))
    return Occurrences.of(np.arange(n), sev, newest, total)
