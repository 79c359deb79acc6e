"""The "hard" cohort: everyday measurement mess layered over a simulated patient's series.

Applied after the physiology model (``CohortConfig(realism="hard")``), from its own
random stream, so it is deterministic by seed and the default cohort is unchanged. The
labelled episodes are not touched: everything added here is NOT an episode.

* noisy devices: extra measurement noise on every value, and ~1 % outliers;
* duplicate readings: ~3 % of spot measurements repeated a minute later (a new reading);
* missed days (~5 % of days without any spot measurement) and skipped measurements (~10 %);
* white-coat / stressful days: ~5 % of days with BP +15–30/+8–15 mm Hg, pulse +10;
* wrong cuff size for ~15 % of patients: a systematic BP offset of +8 to +15 mm Hg;
* post-meal CGM rise and fall: 2–4 mmol/L rises after meals that fall back within ~2 h;
* CGM compression lows: ~1 night in 5, 15–30 minutes of readings near 2.5–3.3 mmol/L;
* COPD with a low stable baseline for half the COPD patients: SpO2 88–92 %, pulse ~95;
* another person on the scale: ~1 % of weights 10–30 kg off.
"""

from __future__ import annotations

import numpy as np

from device_profiles.vocabulary import Condition, Kind
from simulators.series import DAY_S, HOUR_S, MINUTE_S, KindSeries, PatientSeries

NOISE_SD: dict[str, float] = {
    "systolic": 4.0,
    "diastolic": 3.0,
    "pulse": 2.0,
    "glucose": 0.3,
    "glucose_interstitial": 0.15,
    "weight": 0.3,
    "spo2": 0.7,
    "pef": 15.0,
    "temperature": 0.1,
}
OUTLIER_P = 0.01
DUPLICATE_P = 0.03
SKIP_P = 0.10
MISSED_DAY_P = 0.05
STRESS_DAY_P = 0.05
WRONG_CUFF_P = 0.15
COMPRESSION_NIGHT_P = 0.2
MEAL_HOURS_UTC = (6.5, 11.0, 16.5)  # 07:30, 12:00, 17:30 Swedish winter time
SPOT_KINDS = (Kind.BLOOD_PRESSURE, Kind.WEIGHT, Kind.SPO2, Kind.SPIROMETRY, Kind.GLUCOSE_CAPILLARY, Kind.TEMPERATURE)
ROUNDING = {"systolic": 0, "diastolic": 0, "pulse": 0, "spo2": 0, "glucose": 1, "glucose_interstitial": 1}


def _in_episode(t_s: np.ndarray, sim: PatientSeries, margin_s: int = 0) -> np.ndarray:
    mask = np.zeros(t_s.size, dtype=bool)
    for ep in sim.episodes:
        mask |= (t_s >= ep.start_s - margin_s) & (t_s <= ep.end_s + margin_s)
    return mask


def _with_values(s: KindSeries, values: dict[str, np.ndarray]) -> KindSeries:
    return KindSeries(s.kind, s.t_s, values, s.quirk, s.context)


def _cgm(rng: np.random.Generator, s: KindSeries, sim: PatientSeries) -> KindSeries:
    t = s.t_s
    g = s.values["glucose_interstitial"].copy()
    quiet = ~_in_episode(t, sim, 3 * HOUR_S)
    day0 = int(t[0]) // DAY_S * DAY_S if t.size else 0
    days = (int(t[-1]) - day0) // DAY_S + 1 if t.size else 0
    bump = np.zeros(t.size)
    for d in range(days):
        for h in MEAL_HOURS_UTC:
            if rng.random() < 0.15:
                continue  # meal skipped or small
            m = day0 + d * DAY_S + int((h + rng.normal(0, 0.5)) * HOUR_S)
            size = rng.uniform(2.0, 4.0)
            x = (t - m) / HOUR_S
            # Rises to the peak at 1 h, back to baseline by ~3 h: a 2–4 mmol/L fall.
            bump += np.where((x > 0) & (x < 3), size * np.sin(np.pi * np.clip(x, 0, 3) / 3) ** 2, 0.0)
    g = g + np.where(quiet, bump, 0.0)
    # Compression lows: a sensor pressed on at night reads falsely low for 15–30 minutes.
    for d in range(days):
        if rng.random() >= COMPRESSION_NIGHT_P:
            continue
        lo = day0 + d * DAY_S + int(rng.uniform(0.0, 4.0) * HOUR_S)  # 01–05 local
        hi = lo + int(rng.uniform(15, 30) * MINUTE_S)
        w = (t >= lo) & (t < hi) & quiet
        g[w] = rng.uniform(2.5, 3.3, size=int(w.sum()))
    g = g + rng.normal(0, NOISE_SD["glucose_interstitial"], size=g.size)
    values = dict(s.values)
    values["glucose_interstitial"] = np.round(np.clip(g, 2.2, 25.0), 1).astype(np.float64)
    return _with_values(s, values)


def _spot(
    rng: np.random.Generator,
    s: KindSeries,
    sim: PatientSeries,
    cuff_offset: float,
    copd_low: tuple[float, float] | None,
) -> KindSeries:
    n = len(s)
    if n == 0:
        return s
    t = s.t_s
    day = (t // DAY_S).astype(np.int64)
    first = int(day.min())
    n_days = int(day.max()) - first + 1
    stress = rng.random(n_days) < STRESS_DAY_P
    missed = rng.random(n_days) < MISSED_DAY_P
    quiet = ~_in_episode(t, sim, DAY_S)
    values = {k: v.astype(np.float64).copy() for k, v in s.values.items()}
    if s.kind is Kind.BLOOD_PRESSURE:
        sd = stress[day - first]
        values["systolic"] += cuff_offset + np.where(sd, rng.uniform(15, 30, size=n), 0.0)
        values["diastolic"] += 0.6 * cuff_offset + np.where(sd, rng.uniform(8, 15, size=n), 0.0)
        if "pulse" in values:
            values["pulse"] += np.where(sd, 10.0, 0.0)
    if s.kind is Kind.SPO2 and copd_low is not None:
        shift_spo2, shift_pulse = copd_low
        values["spo2"] += shift_spo2
        if "pulse" in values:
            values["pulse"] += shift_pulse
    if s.kind is Kind.WEIGHT:
        other = (rng.random(n) < 0.01) & quiet
        values["weight"] += np.where(other, rng.choice([-1.0, 1.0], size=n) * rng.uniform(10, 30, size=n), 0.0)
    for name in list(values):
        if name in NOISE_SD:
            out = (rng.random(n) < OUTLIER_P) & quiet
            values[name] = (
                values[name]
                + rng.normal(0, NOISE_SD[name], size=n)
                + np.where(out, rng.choice([-1.0, 1.0], size=n) * 4 * NOISE_SD[name], 0.0)
            )
        if name in ROUNDING:
            values[name] = np.round(values[name], ROUNDING[name])
    if "spo2" in values:
        values["spo2"] = np.clip(values["spo2"], 70, 100)
    if "diastolic" in values:
        values["diastolic"] = np.minimum(values["diastolic"], values["systolic"] - 10)
    keep = ~missed[day - first] & (rng.random(n) >= SKIP_P)
    keep |= ~quiet  # the labelled episodes keep their measurements
    dup = keep & (rng.random(n) < DUPLICATE_P)
    s2 = _with_values(s, values)
    kept = s2.select(keep)
    dups = s2.select(dup)
    t_all = np.concatenate([kept.t_s, dups.t_s + MINUTE_S])
    order = np.argsort(t_all, kind="stable")
    return KindSeries(
        s.kind,
        t_all[order],
        {k: np.concatenate([kept.values[k], dups.values[k]])[order] for k in kept.values},
        np.concatenate([kept.quirk, dups.quirk])[order],
        np.concatenate([kept.context, dups.context])[order],
    )


def make_hard(
    rng: np.random.Generator, condition: Condition, params: dict[str, float], sim: PatientSeries
) -> PatientSeries:
    """``sim`` with the everyday mess above; episodes unchanged."""
    cuff_offset = rng.uniform(8, 15) if rng.random() < WRONG_CUFF_P else 0.0
    copd_low: tuple[float, float] | None = None
    if condition is Condition.COPD and rng.random() < 0.5:
        target_spo2 = rng.uniform(89.0, 91.0)
        target_pulse = rng.uniform(92, 98)
        copd_low = (
            target_spo2 - params.get("spo2_pct", 95.0),
            target_pulse - params.get("pulse_bpm", 78.0),
        )
    series: dict[Kind, KindSeries] = {}
    for kind, s in sim.series.items():
        if kind is Kind.GLUCOSE_CGM:
            series[kind] = _cgm(rng, s, sim)
        elif kind in SPOT_KINDS:
            series[kind] = _spot(rng, s, sim, cuff_offset, copd_low)
        else:
            series[kind] = s
    return PatientSeries(series, list(sim.episodes))
