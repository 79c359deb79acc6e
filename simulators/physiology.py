"""Physiology models: seeded, pure functions from a random generator to measurement arrays.

Each condition has a model with two steps, so a cohort can know a patient's care-plan facts
(dry weight, personal best PEF, SpO2 target) without simulating the series:

* ``draw_params(rng)``: the patient's personal parameters (baselines, variability);
* ``simulate(rng, params, start_s, days, habits)``: the measured series and the labelled
  episodes injected into them.

Values are in the stored units of ``device_profiles.vocabulary`` and use its component
names. Episodes are sized so that the default rules of CLINICAL_RULES.md detect most of
them, while day-to-day variation stays wide enough that some false alerts occur, as they
do with real patients. Times of day are UTC hours (Sweden is UTC+1/+2; the models do not
need daylight-saving accuracy).

Every episode span runs from the first injected change to the clinically meaningful
point: for slow deteriorations (heart failure, COPD, asthma, hypertension) that is the
peak, the day a patient would typically be treated or admitted; for glycaemic episodes it
is the return to the normal range.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from device_profiles.vocabulary import Condition, Kind
from simulators.series import (
    DAY_S,
    HOUR_S,
    MINUTE_S,
    EpisodeSpan,
    FloatArray,
    IntArray,
    KindSeries,
    PatientSeries,
    Quirk,
    QuirkArray,
    StrArray,
)

Params = dict[str, float]
CGM_STEP_S = 5 * MINUTE_S


@dataclass(frozen=True)
class Habits:
    """How reliably a patient measures, and how their devices misbehave."""

    miss_probability: float = 0.06  # a scheduled measurement not taken
    absence_probability_per_30d: float = 0.15  # a 2-4 day break (travel, hospital visit)
    duplicate_probability: float = 0.01  # a stored record sent again
    clock_unset_probability: float = 0.004  # device clock lost (battery change)
    episode_rate_scale: float = 1.0  # multiplies every episode rate (denser scenarios)

    @classmethod
    def perfect(cls) -> Habits:
        """No misses, no quirks: for tests that check injected changes exactly."""
        return cls(0.0, 0.0, 0.0, 0.0)


# --- shared helpers -----------------------------------------------------------------


def _ar1(rng: np.random.Generator, n: int, phi: float, sd: float) -> FloatArray:
    """Stationary AR(1) noise, as white noise filtered by a truncated geometric kernel."""
    if n == 0:
        return np.zeros(0)
    length = max(1, min(n, int(np.ceil(6.0 / (1.0 - phi)))))
    kernel = phi ** np.arange(length)
    eps = rng.normal(0.0, sd * np.sqrt(1.0 - phi**2), size=n + length)
    # 'valid' drops the warm-up so the first sample already has the stationary spread.
    out = np.convolve(eps, kernel, mode="valid")[:n]
    return np.asarray(out, dtype=np.float64)


def _daily_times(rng: np.random.Generator, start_s: int, days: int, hour: float, jitter_min: float) -> IntArray:
    """One time a day at about ``hour`` (UTC), within [start, start + days)."""
    day0 = start_s - start_s % DAY_S
    base = day0 + np.arange(days + 1, dtype=np.int64) * DAY_S + int(hour * HOUR_S)
    t = (base + rng.normal(0.0, jitter_min * MINUTE_S, size=base.size)).astype(np.int64)
    return t[(t >= start_s) & (t < start_s + days * DAY_S)]


def _absences(rng: np.random.Generator, start_s: int, days: int, habits: Habits) -> list[tuple[int, int]]:
    n = rng.poisson(habits.absence_probability_per_30d * days / 30.0)
    spans = []
    for _ in range(n):
        a = start_s + int(rng.uniform(0, days) * DAY_S)
        spans.append((a, a + int(rng.uniform(2, 4) * DAY_S)))
    return spans


def _kept(rng: np.random.Generator, t_s: IntArray, absences: list[tuple[int, int]], habits: Habits) -> IntArray:
    keep = rng.random(t_s.size) >= habits.miss_probability
    for a, b in absences:
        keep &= ~((t_s >= a) & (t_s < b))
    return t_s[keep]


def _quirks(rng: np.random.Generator, n: int, habits: Habits, *, clock: bool = True) -> QuirkArray:
    q = np.zeros(n, dtype=np.int8)
    u = rng.random(n)
    q[u < habits.duplicate_probability] = Quirk.DUPLICATE_RESEND
    if clock:
        q[(u >= habits.duplicate_probability) & (u < habits.duplicate_probability + habits.clock_unset_probability)] = (
            Quirk.CLOCK_UNSET
        )
    return q


def _place_episodes(
    rng: np.random.Generator,
    start_s: int,
    days: int,
    rate_per_day: float,
    duration_s: tuple[float, float],
    *,
    earliest_day: float,
    gap_s: float,
) -> list[tuple[int, int]]:
    """Non-overlapping (start, end) spans, a Poisson number of them, after a warm-up."""
    lo = start_s + int(earliest_day * DAY_S)
    hi = start_s + days * DAY_S
    if hi - lo <= duration_s[1]:
        return []
    n = rng.poisson(rate_per_day * (hi - lo) / DAY_S)
    starts = np.sort(rng.uniform(lo, hi - duration_s[1], size=n)).astype(np.int64)
    durations = rng.uniform(duration_s[0], duration_s[1], size=n).astype(np.int64)
    spans: list[tuple[int, int]] = []
    for a, d in zip(starts.tolist(), durations.tolist(), strict=True):
        if spans and a < spans[-1][1] + gap_s:
            continue
        spans.append((a, a + d))
    return spans


def envelope(t_s: IntArray, a: int, b: int, *, rise_s: float, power: float, recover_s: float) -> FloatArray:
    """0 before ``a``; rises as x**power to 1 over ``rise_s``; 1 until ``b``; back to 0 over ``recover_s``."""
    t = t_s.astype(np.float64)
    w = np.zeros(t.size)
    rising = (t >= a) & (t < a + rise_s)
    w[rising] = ((t[rising] - a) / rise_s) ** power
    w[(t >= a + rise_s) & (t < b)] = 1.0
    if recover_s > 0:
        falling = (t >= b) & (t < b + recover_s)
        w[falling] = 1.0 - (t[falling] - b) / recover_s
    return w


def _f64(x: object) -> FloatArray:
    return np.asarray(x, dtype=np.float64)


def _empty_flags(n: int) -> StrArray:
    return np.full(n, "", dtype="<U24")


def _series(
    kind: Kind,
    t_s: IntArray,
    values: dict[str, FloatArray],
    quirk: QuirkArray,
    context: StrArray | None = None,
) -> KindSeries:
    order = np.argsort(t_s, kind="stable")
    ctx = _empty_flags(t_s.size) if context is None else context
    return KindSeries(kind, t_s[order], {k: v[order] for k, v in values.items()}, quirk[order], ctx[order])


def _bp_values(sys_mmhg: FloatArray, dia_mmhg: FloatArray, pulse_bpm: FloatArray) -> dict[str, FloatArray]:
    sys_r = np.round(sys_mmhg)
    # Oscillometric cuffs keep a pulse pressure; never let noise invert the pair.
    dia_r = np.minimum(np.round(dia_mmhg), sys_r - 15)
    return {
        "systolic": sys_r,
        "diastolic": dia_r,
        "mean_arterial": np.round(dia_r + (sys_r - dia_r) / 3.0),
        "pulse": np.round(pulse_bpm),
    }


# --- diabetes -----------------------------------------------------------------------


def draw_diabetes_params(rng: np.random.Generator, *, type1: bool) -> Params:
    return {
        "type1": 1.0 if type1 else 0.0,
        "mean_mmol_l": rng.normal(8.0, 0.6) if type1 else rng.normal(7.4, 0.5),
        "meal_rise_mmol_l": rng.uniform(2.6, 3.6) if type1 else rng.uniform(1.8, 2.8),
        "drift_sd_mmol_l": rng.uniform(0.7, 1.0) if type1 else rng.uniform(0.4, 0.7),
        "dawn_mmol_l": rng.uniform(0.3, 1.0),
        "hypo_rate_per_day": 0.25 if type1 else 0.04,
        "hyper_rate_per_day": 0.12 if type1 else 0.08,
    }


def _meal_kernel() -> FloatArray:
    # Gamma-like post-prandial curve peaking at ~50 min and settling over ~4 h.
    tau = np.arange(48, dtype=np.float64) / 10.0
    return np.asarray(tau * np.exp(1.0 - tau), dtype=np.float64)


# Consensus levels (Battelino 2019; International Hypoglycaemia Study Group 2017), mmol/L.
LEVEL_1_BELOW = 3.9
LEVEL_2_BELOW = 3.0
HIGH_ABOVE = 13.9
LEVEL_2_MIN_S = 15 * MINUTE_S  # a CGM level 2 event: at least 15 consecutive minutes
PROLONGED_LOW_S = 120 * MINUTE_S  # D3: more than 120 min below 3.9
PROLONGED_HIGH_S = 120 * MINUTE_S  # D7 medium: 2 h above 13.9
SUSTAINED_HIGH_S = 360 * MINUTE_S  # D7 high: 6 h above 13.9
RECURRENT_WITHIN_S = 7 * DAY_S  # D11: the 3rd level 2 low within 7 days
RECURRENT_COUNT = 3


def _longest_run_s(mask: npt.NDArray[np.bool_], step_s: int) -> int:
    """The longest run of True in ``mask`` (samples ``step_s`` apart), in seconds."""
    best = run = 0
    for m in mask.tolist():
        run = run + 1 if m else 0
        best = max(best, run)
    return best * step_s


def glycaemic_grade(kind: str, t: IntArray, g: FloatArray, start_s: int, end_s: int) -> str:
    """The grade (``series.ROUTE_OF_GRADE``) of a glycaemic episode, from the true glucose ``g``."""
    inside = (t >= start_s) & (t <= end_s)
    gi = g[inside]
    if kind == "hypoglycaemia":
        if _longest_run_s(gi < LEVEL_2_BELOW, CGM_STEP_S) >= LEVEL_2_MIN_S:
            return "level_2"
        if _longest_run_s(gi < LEVEL_1_BELOW, CGM_STEP_S) > PROLONGED_LOW_S:
            return "prolonged_low"
        return "level_1"
    if kind == "hyperglycaemia":
        above = _longest_run_s(gi > HIGH_ABOVE, CGM_STEP_S)
        if above >= SUSTAINED_HIGH_S:
            return "sustained_high"
        return "prolonged_high" if above >= PROLONGED_HIGH_S else "brief_high"
    return ""


def type1_low_grades(spans: list[EpisodeSpan], t: IntArray, g: FloatArray) -> list[EpisodeSpan]:
    """Type 1 lows regraded by who acts (``series.ROUTE_OF_GRADE``): a level 2 low is the
    patient's to treat unless it lasts (``prolonged_low``) or is the 3rd within 7 days
    (``level_2_recurrent``); ``spans`` keep their order."""
    level_2_starts: list[int] = []
    out = list(spans)
    for k in sorted(range(len(spans)), key=lambda k: spans[k].start_s):
        sp = spans[k]
        if sp.type == "hypoglycaemia" and sp.grade == "level_2":
            gi = g[(t >= sp.start_s) & (t <= sp.end_s)]
            recent = [s0 for s0 in level_2_starts if sp.start_s - s0 <= RECURRENT_WITHIN_S]
            level_2_starts.append(sp.start_s)
            if _longest_run_s(gi < LEVEL_1_BELOW, CGM_STEP_S) > PROLONGED_LOW_S:
                sp = replace(sp, grade="prolonged_low")
            else:
                sp = replace(sp, grade="level_2_recurrent" if len(recent) + 1 >= RECURRENT_COUNT else "level_2_single")
            out[k] = sp
    return out


def simulate_diabetes(
    rng: np.random.Generator, params: Params, start_s: int, days: int, habits: Habits = Habits()
) -> PatientSeries:
    type1 = params["type1"] > 0.5
    condition = Condition.DIABETES_T1 if type1 else Condition.DIABETES_T2
    n = days * DAY_S // CGM_STEP_S
    t = start_s + np.arange(n, dtype=np.int64) * CGM_STEP_S
    hour = (t % DAY_S) / HOUR_S
    # Dawn phenomenon: counter-regulatory hormones raise glucose in the early morning.
    g = params["mean_mmol_l"] + params["dawn_mmol_l"] * np.exp(-((hour - 5.5) ** 2) / (2 * 1.5**2))
    impulses = np.zeros(n)
    for meal_hour in (7.5, 12.0, 18.0):
        mt = _daily_times(rng, start_s, days, meal_hour, 30)
        size = rng.lognormal(0.0, 0.3, size=mt.size)
        np.add.at(impulses, ((mt - start_s) // CGM_STEP_S).astype(np.int64), size)
    g = g + params["meal_rise_mmol_l"] * np.convolve(impulses, _meal_kernel())[:n]
    # Slow drift: insulin sensitivity, activity, illness. AR(1) with a ~5 h memory, so
    # 15-min slopes from drift alone stay mostly below the D6 rate-of-change thresholds.
    g = g + _ar1(rng, n, 0.985, params["drift_sd_mmol_l"])
    g = np.maximum(g, 4.2)

    scale = habits.episode_rate_scale
    spans: list[EpisodeSpan] = []
    confirm_t: list[int] = []
    hypos = _place_episodes(
        rng,
        start_s,
        days,
        params["hypo_rate_per_day"] * scale,
        (70 * MINUTE_S, 140 * MINUTE_S),
        earliest_day=0.5,
        gap_s=12 * HOUR_S,
    )
    hypers = _place_episodes(
        rng,
        start_s,
        days,
        params["hyper_rate_per_day"] * scale,
        (4 * HOUR_S, 8 * HOUR_S),
        earliest_day=0.5,
        gap_s=12 * HOUR_S,
    )
    # Hyperglycaemia that would overlap a hypo is dropped, so labels never overlap.
    hypers = [h for h in hypers if all(h[1] + 6 * HOUR_S < a or h[0] > b + 6 * HOUR_S for a, b in hypos)]
    for a, b in hypos:
        # Falls over 30 min to the nadir, stays until treated, recovers over 20 min.
        nadir = rng.uniform(2.4, 3.4) if type1 else rng.uniform(2.8, 3.5)
        w = envelope(t, a, b - 20 * MINUTE_S, rise_s=30 * MINUTE_S, power=1.0, recover_s=20 * MINUTE_S)
        g = g * (1 - w) + nadir * w
        spans.append(EpisodeSpan("hypoglycaemia", condition, a, b))
        confirm_t.append(a + 40 * MINUTE_S)
    for a, b in hypers:
        # A missed bolus or illness: rises over 1 h, stays high, falls over 90 min.
        peak = rng.uniform(15.5, 21.0)
        w = envelope(t, a, b - 90 * MINUTE_S, rise_s=60 * MINUTE_S, power=1.0, recover_s=90 * MINUTE_S)
        g = g * (1 - w) + peak * w
        spans.append(EpisodeSpan("hyperglycaemia", condition, a, b))
    # Grade each episode from the true glucose (series.ROUTE_OF_GRADE: the consensus levels).
    spans = [replace(sp, grade=glycaemic_grade(sp.type, t, g, sp.start_s, sp.end_s)) for sp in spans]
    if type1:
        spans = type1_low_grades(spans, t, g)

    # CGM: sensor noise, the sensor's range, warm-up after sensor changes, dropouts.
    cgm = np.clip(g + rng.normal(0.0, 0.25, size=n), 2.2, 22.2)
    keep = np.ones(n, dtype=bool)
    for change in range(0, days, 14):
        a = start_s + change * DAY_S + int(rng.uniform(8, 20) * HOUR_S)
        keep &= ~((t >= a) & (t < a + HOUR_S))
    for _ in range(rng.poisson(0.12 * days)):
        a = start_s + int(rng.uniform(0, days) * DAY_S)
        keep &= ~((t >= a) & (t < a + int(rng.uniform(30, 150) * MINUTE_S)))
    cgm_t = t[keep]
    series = {
        Kind.GLUCOSE_CGM: _series(
            Kind.GLUCOSE_CGM,
            cgm_t,
            {"glucose_interstitial": np.round(cgm[keep], 1)},
            _quirks(rng, int(keep.sum()), habits, clock=False),
        )
    }

    # Capillary: T1 before meals and at bedtime, T2 fasting in the morning; plus a
    # confirmation during each hypo, which is what patients are taught to do.
    absences = _absences(rng, start_s, days, habits)
    slots: tuple[tuple[float, str], ...] = (
        (7.0, "meal_preprandial"),
        (11.5, "meal_preprandial"),
        (17.5, "meal_preprandial"),
        (22.0, "meal_bedtime"),
    )
    if not type1:
        slots = ((7.0, "meal_fasting"),)
    cap_t_parts: list[IntArray] = []
    ctx_parts: list[StrArray] = []
    for slot_hour, ctx in slots:
        st = _kept(rng, _daily_times(rng, start_s, days, slot_hour, 20), absences, habits)
        cap_t_parts.append(st)
        ctx_parts.append(np.full(st.size, ctx, dtype="<U24"))
    conf = np.array([c for c in confirm_t if c < start_s + days * DAY_S], dtype=np.int64)
    cap_t_parts.append(conf)
    ctx_parts.append(np.full(conf.size, "meal_casual", dtype="<U24"))
    cap_t = np.concatenate(cap_t_parts)
    cap_ctx = np.concatenate(ctx_parts)
    true_at = np.interp(cap_t.astype(np.float64), t.astype(np.float64), g)
    cap = np.clip(true_at * (1.0 + rng.normal(0.0, 0.05, size=cap_t.size)), 1.1, 33.3)
    series[Kind.GLUCOSE_CAPILLARY] = _series(
        Kind.GLUCOSE_CAPILLARY, cap_t, {"glucose": np.round(cap, 1)}, _quirks(rng, cap_t.size, habits), cap_ctx
    )
    return PatientSeries(series, spans)


# --- heart failure ------------------------------------------------------------------


def draw_heart_failure_params(rng: np.random.Generator) -> Params:
    dry = float(np.round(rng.uniform(60, 110), 1))
    return {
        "dry_weight_kg": dry,
        "weight_offset_kg": rng.normal(0.4, 0.3),
        "systolic_mmhg": rng.uniform(110, 135),
        "pulse_bpm": rng.uniform(62, 80),
        "spo2_pct": rng.uniform(94.5, 97.5),
        "decompensation_rate_per_day": 1 / 40,
    }


def _symptom_series(
    rng: np.random.Generator,
    t_s: IntArray,
    items: tuple[str, ...],
    severity: FloatArray,
    habits: Habits,
) -> KindSeries:
    """A daily symptom form: each 'worse than usual' item rises with the episode's severity."""
    # About one spurious "worse than usual" answer a month per item: patients do report
    # bad days that are not deteriorations.
    p = 0.012 + 0.74 * (severity > 0.3)
    vals = {name: (rng.random(t_s.size) < p).astype(np.float64) for name in items}
    return _series(Kind.SYMPTOMS, t_s, vals, _quirks(rng, t_s.size, habits))


def simulate_heart_failure(
    rng: np.random.Generator, params: Params, start_s: int, days: int, habits: Habits = Habits()
) -> PatientSeries:
    absences = _absences(rng, start_s, days, habits)
    t_w = _kept(rng, _daily_times(rng, start_s, days, 6.0, 25), absences, habits)
    t_bp = t_w + int(3 * MINUTE_S)
    t_ox = t_w + int(6 * MINUTE_S)
    spans_raw = _place_episodes(
        rng,
        start_s,
        days,
        params["decompensation_rate_per_day"] * habits.episode_rate_scale,
        (4 * DAY_S, 9 * DAY_S),
        earliest_day=10,
        gap_s=10 * DAY_S,
    )
    sev_w = np.zeros(t_w.size)
    gain = np.zeros(t_w.size)
    pulse_up = np.zeros(t_w.size)
    spo2_down = np.zeros(t_w.size)
    spans = []
    for a, b in spans_raw:
        # Fluid builds up slowly, then faster (Chaudhry 2007): a convex ramp to the peak,
        # then diuretics bring the weight down over about three days.
        w = envelope(t_w, a, b, rise_s=b - a, power=1.6, recover_s=3 * DAY_S)
        sev_w = np.maximum(sev_w, w)
        gain += rng.uniform(2.8, 4.5) * w
        pulse_up += rng.uniform(8, 16) * w
        spo2_down += rng.uniform(1.5, 4.0) * w**2
        spans.append(EpisodeSpan("decompensation", Condition.HEART_FAILURE, a, b))
    n = t_w.size
    weight = params["dry_weight_kg"] + params["weight_offset_kg"] + _ar1(rng, n, 0.8, 0.35)
    weight = weight + rng.normal(0, 0.2, size=n) + gain
    sys_ = params["systolic_mmhg"] + rng.normal(0, 7, size=n) - 4 * sev_w
    dia = 0.6 * params["systolic_mmhg"] + rng.normal(0, 5, size=n)
    pulse = params["pulse_bpm"] + _ar1(rng, n, 0.5, 4.0) + pulse_up
    spo2 = np.clip(np.round(params["spo2_pct"] + rng.normal(0, 0.8, size=n) - spo2_down), 70, 100)
    series = {
        Kind.WEIGHT: _series(Kind.WEIGHT, t_w, {"weight": np.round(weight, 1)}, _quirks(rng, n, habits)),
        Kind.BLOOD_PRESSURE: _series(Kind.BLOOD_PRESSURE, t_bp, _bp_values(sys_, dia, pulse), _quirks(rng, n, habits)),
        Kind.SPO2: _series(
            Kind.SPO2,
            t_ox,
            {"spo2": spo2, "pulse": np.round(pulse + rng.normal(0, 2, size=n))},
            _quirks(rng, n, habits),
        ),
    }
    filled = rng.random(n) < 0.7
    series[Kind.SYMPTOMS] = _symptom_series(
        rng, t_w[filled] + 10 * MINUTE_S, ("breathlessness_worse", "orthopnoea", "oedema_worse"), sev_w[filled], habits
    )
    return PatientSeries(series, spans)


# --- COPD ---------------------------------------------------------------------------


def draw_copd_params(rng: np.random.Generator) -> Params:
    hypercapnic = rng.random() < 0.2
    fev1 = rng.uniform(0.8, 2.0)
    return {
        "hypercapnic": 1.0 if hypercapnic else 0.0,
        "spo2_pct": rng.uniform(89.5, 92.0) if hypercapnic else rng.uniform(93.5, 96.5),
        "pulse_bpm": rng.uniform(70, 86),
        "fev1_l": fev1,
        "fvc_l": fev1 / rng.uniform(0.45, 0.65),
        "pef_l_min": fev1 * rng.uniform(150, 190),
        "exacerbation_rate_per_day": 1 / 40,
    }


def simulate_copd(
    rng: np.random.Generator, params: Params, start_s: int, days: int, habits: Habits = Habits()
) -> PatientSeries:
    absences = _absences(rng, start_s, days, habits)
    t_ox = _kept(rng, _daily_times(rng, start_s, days, 8.0, 40), absences, habits)
    t_sp = t_ox + 4 * MINUTE_S
    spans_raw = _place_episodes(
        rng,
        start_s,
        days,
        params["exacerbation_rate_per_day"] * habits.episode_rate_scale,
        (3 * DAY_S, 8 * DAY_S),
        earliest_day=10,
        gap_s=14 * DAY_S,
    )
    n = t_ox.size
    sev = np.zeros(n)
    spo2_down = np.zeros(n)
    pulse_up = np.zeros(n)
    lung_down = np.zeros(n)
    spans = []
    for a, b in spans_raw:
        w = envelope(t_ox, a, b, rise_s=b - a, power=1.3, recover_s=7 * DAY_S)
        sev = np.maximum(sev, w)
        spo2_down += rng.uniform(4.0, 7.0) * w
        pulse_up += rng.uniform(10, 20) * w
        lung_down += rng.uniform(0.20, 0.35) * w
        spans.append(EpisodeSpan("exacerbation", Condition.COPD, a, b))
    spo2 = np.clip(np.round(params["spo2_pct"] + rng.normal(0, 1.0, size=n) - spo2_down), 70, 100)
    pulse = np.round(params["pulse_bpm"] + _ar1(rng, n, 0.5, 4.0) + pulse_up)
    day_factor = 1.0 + rng.normal(0, 0.06, size=n)
    lung: FloatArray = np.asarray((1.0 - lung_down) * day_factor, dtype=np.float64)
    series = {
        Kind.SPO2: _series(Kind.SPO2, t_ox, {"spo2": spo2, "pulse": pulse}, _quirks(rng, n, habits)),
        Kind.SPIROMETRY: _series(
            Kind.SPIROMETRY,
            t_sp,
            {
                "pef": _f64(np.round(np.clip(params["pef_l_min"] * lung, 50, 900))),
                "fev1": _f64(np.round(np.clip(params["fev1_l"] * lung * (1 + rng.normal(0, 0.02, size=n)), 0.2, 8), 2)),
                "fvc": _f64(np.round(np.clip(params["fvc_l"] * lung * (1 + rng.normal(0, 0.03, size=n)), 0.2, 10), 2)),
            },
            _quirks(rng, n, habits),
        ),
    }
    filled = rng.random(n) < 0.8
    series[Kind.SYMPTOMS] = _symptom_series(
        rng,
        t_ox[filled] + 8 * MINUTE_S,
        ("breathlessness_worse", "sputum_volume_worse", "sputum_purulence_worse"),
        sev[filled],
        habits,
    )
    return PatientSeries(series, spans)


# --- asthma -------------------------------------------------------------------------


def draw_asthma_params(rng: np.random.Generator) -> Params:
    return {
        "personal_best_pef": float(np.round(rng.uniform(380, 650), -1)),
        "morning_ratio": rng.uniform(0.88, 0.93),
        "evening_ratio": rng.uniform(0.93, 0.97),
        "exacerbation_rate_per_day": 1 / 40,
    }


def simulate_asthma(
    rng: np.random.Generator, params: Params, start_s: int, days: int, habits: Habits = Habits()
) -> PatientSeries:
    absences = _absences(rng, start_s, days, habits)
    t_m = _kept(rng, _daily_times(rng, start_s, days, 6.5, 30), absences, habits)
    t_e = _kept(rng, _daily_times(rng, start_s, days, 19.5, 40), absences, habits)
    t = np.concatenate([t_m, t_e])
    morning = np.concatenate([np.ones(t_m.size, dtype=bool), np.zeros(t_e.size, dtype=bool)])
    spans_raw = _place_episodes(
        rng,
        start_s,
        days,
        params["exacerbation_rate_per_day"] * habits.episode_rate_scale,
        (3 * DAY_S, 7 * DAY_S),
        earliest_day=8,
        gap_s=14 * DAY_S,
    )
    drop = np.zeros(t.size)
    spans = []
    for a, b in spans_raw:
        w = envelope(t, a, b, rise_s=b - a, power=1.2, recover_s=5 * DAY_S)
        drop += rng.uniform(0.30, 0.48) * w
        spans.append(EpisodeSpan("exacerbation", Condition.ASTHMA, a, b))
    # Airway narrowing is worst in the early morning, so exacerbations widen the diurnal
    # swing (GINA): mornings drop further than evenings.
    ratio = np.where(morning, params["morning_ratio"], params["evening_ratio"])
    ratio = ratio * (1.0 - drop * np.where(morning, 1.15, 0.85)) + rng.normal(0, 0.035, size=t.size)
    pef = np.clip(np.round(params["personal_best_pef"] * np.minimum(ratio, 1.03)), 50, 900)
    series = {
        Kind.SPIROMETRY: _series(Kind.SPIROMETRY, t, {"pef": pef}, _quirks(rng, t.size, habits)),
    }
    t_sym = t_e + 5 * MINUTE_S
    sev_e = drop[~morning]
    puffs = rng.poisson(0.3 + 14.0 * sev_e).astype(np.float64)
    series[Kind.SYMPTOMS] = _series(
        Kind.SYMPTOMS, t_sym, {"reliever_puffs": np.minimum(puffs, 100)}, _quirks(rng, t_sym.size, habits)
    )
    return PatientSeries(series, spans)


# --- hypertension -------------------------------------------------------------------


def draw_hypertension_params(rng: np.random.Generator) -> Params:
    return {
        "systolic_mmhg": rng.uniform(120, 137),
        "diastolic_mmhg": rng.uniform(72, 84),
        "pulse_bpm": rng.uniform(60, 80),
        "episode_rate_per_day": 1 / 35,
    }


def simulate_hypertension(
    rng: np.random.Generator, params: Params, start_s: int, days: int, habits: Habits = Habits()
) -> PatientSeries:
    absences = _absences(rng, start_s, days, habits)
    sessions = np.concatenate(
        [
            _kept(rng, _daily_times(rng, start_s, days, 6.5, 30), absences, habits),
            _kept(rng, _daily_times(rng, start_s, days, 20.0, 40), absences, habits),
        ]
    )
    # ESH home monitoring: two readings one to two minutes apart at each session.
    t = np.concatenate([sessions, sessions + int(rng.uniform(60, 120))])
    evening = np.tile(((sessions % DAY_S) > 12 * HOUR_S), 2)
    spans_raw = _place_episodes(
        rng,
        start_s,
        days,
        params["episode_rate_per_day"] * habits.episode_rate_scale,
        (2 * DAY_S, 5 * DAY_S),
        earliest_day=8,
        gap_s=10 * DAY_S,
    )
    w_all = np.zeros(t.size)
    sys_up = np.zeros(t.size)
    dia_up = np.zeros(t.size)
    spans = []
    for a, b in spans_raw:
        # Rises within half a day (missed medication, pain, NSAIDs) and stays up.
        w = envelope(t, a, b, rise_s=12 * HOUR_S, power=1.0, recover_s=DAY_S)
        w_all = np.maximum(w_all, w)
        sys_up += rng.uniform(35, 55) * w
        dia_up += rng.uniform(18, 28) * w
        spans.append(EpisodeSpan("hypertensive_episode", Condition.HYPERTENSION, a, b))
    n = t.size
    session_noise = np.tile(rng.normal(0, 6, size=sessions.size), 2)
    sys_ = params["systolic_mmhg"] - 4 * evening + session_noise + rng.normal(0, 4, size=n) + sys_up
    dia = params["diastolic_mmhg"] - 2 * evening + 0.5 * session_noise + rng.normal(0, 3, size=n) + dia_up
    pulse = params["pulse_bpm"] + rng.normal(0, 4, size=n) + 6 * w_all
    series = {
        Kind.BLOOD_PRESSURE: _series(Kind.BLOOD_PRESSURE, t, _bp_values(sys_, dia, pulse), _quirks(rng, n, habits))
    }
    return PatientSeries(series, spans)


# --- registry -----------------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    condition: Condition
    draw_params: Callable[[np.random.Generator], Params]
    simulate: Callable[[np.random.Generator, Params, int, int, Habits], PatientSeries]
    kinds: tuple[Kind, ...]


MODELS: dict[Condition, Model] = {
    Condition.DIABETES_T1: Model(
        Condition.DIABETES_T1,
        lambda rng: draw_diabetes_params(rng, type1=True),
        simulate_diabetes,
        (Kind.GLUCOSE_CGM, Kind.GLUCOSE_CAPILLARY),
    ),
    Condition.DIABETES_T2: Model(
        Condition.DIABETES_T2,
        lambda rng: draw_diabetes_params(rng, type1=False),
        simulate_diabetes,
        (Kind.GLUCOSE_CGM, Kind.GLUCOSE_CAPILLARY),
    ),
    Condition.HEART_FAILURE: Model(
        Condition.HEART_FAILURE,
        draw_heart_failure_params,
        simulate_heart_failure,
        (Kind.WEIGHT, Kind.BLOOD_PRESSURE, Kind.SPO2, Kind.SYMPTOMS),
    ),
    Condition.COPD: Model(Condition.COPD, draw_copd_params, simulate_copd, (Kind.SPO2, Kind.SPIROMETRY, Kind.SYMPTOMS)),
    Condition.ASTHMA: Model(Condition.ASTHMA, draw_asthma_params, simulate_asthma, (Kind.SPIROMETRY, Kind.SYMPTOMS)),
    Condition.HYPERTENSION: Model(
        Condition.HYPERTENSION, draw_hypertension_params, simulate_hypertension, (Kind.BLOOD_PRESSURE,)
    ),
}
