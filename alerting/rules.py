"""The default rule set of CLINICAL_RULES.md as a declarative, vectorised registry.

Each rule is a ``Rule`` entry: id, conditions it applies to, the series it reads, how
far back its occurrences count as current (``lookback_s``), how long the condition must
stay clear before resolution is suggested (``hysteresis_s``), default parameters (every
number a care plan may override, by ``care_plan.thresholds[rule_id][param]``) and an
``evaluate`` function that computes *occurrences* for all patients at once.

An occurrence is (patient, severity, time, value, since): "at ``time`` the condition
held with this severity". The engine keeps, per patient and rule, the occurrence with
the highest severity (ties: the newest) among those within the rule's lookback. Rules
never loop over patients: they use sorted-array segment operations (runs via a running
maximum of start indices, lags via searchsorted, sessions via reduceat) and day grids
(patients × days) whose columns are iterated at most ~28 times.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import numpy as np
from numpy.typing import NDArray

from alerting import baselines
from alerting.cohort import Cohort
from alerting.series import (
    F64,
    I64,
    SEC_PER_DAY,
    SEC_PER_HOUR,
    SEC_PER_MIN,
    B,
    Dataset,
    DayGrid,
    Series,
    Sessions,
    daily_first,
    daily_reduce,
    daily_sum,
    lag_index,
    last_values,
    rolling_mean,
    run_start_times,
    segment_chunks,
    segment_sums,
    sessions,
    shift_cols,
)

# Severity ranks (device_profiles.vocabulary.Severity order); -1 = does not fire.
NONE, INFO, LOW, MEDIUM, HIGH, CRITICAL = -1, 0, 1, 2, 3, 4

# Series keys: "<kind>.<component>" as stored in observation.
CGM = "glucose_cgm.glucose_interstitial"
CAPILLARY = "glucose_capillary.glucose"
WEIGHT = "weight.weight"
SYSTOLIC = "blood_pressure.systolic"
DIASTOLIC = "blood_pressure.diastolic"
BP_PULSE = "blood_pressure.pulse"
SPO2 = "spo2.spo2"
OXIMETER_PULSE = "spo2.pulse"
TEMPERATURE = "temperature.temperature"
PEF = "spirometry.pef"
FEV1 = "spirometry.fev1"
SYMPTOM_HF = ("symptoms.breathlessness_worse", "symptoms.orthopnoea", "symptoms.oedema_worse")
SYMPTOM_COPD = (
    "symptoms.breathlessness_worse",
    "symptoms.sputum_volume_worse",
    "symptoms.sputum_purulence_worse",
)
# H3: symptoms that turn very high blood pressure into a possible hypertensive emergency.
SYMPTOM_HTN = ("symptoms.hypertensive_symptoms",)
CAT = "symptoms.cat_score"
RELIEVER = "symptoms.reliever_puffs"

DIABETES = ("diabetes_t1", "diabetes_t2")
# Gaps longer than this break a CGM run: a silent sensor is not evidence of a low.
CGM_MAX_GAP_S = 20 * SEC_PER_MIN
# Readings this close together form one session (duplicate BP, three PEF blows).
SESSION_GAP_S = 10 * SEC_PER_MIN
# "Confirmed" SpO2: a repeat reading within this time also meets the threshold.
CONFIRM_S = 15 * SEC_PER_MIN
T = TypeVar("T")
# Values per chunk when a rule works through a very long series patient-chunk by chunk.
CHUNK_VALUES = 1_000_000
GRID_DAYS = 29  # today and the 28 days before: the longest window any rule reads
# Point rules look back 24 h; a little more history keeps sessions at the edge whole.
LOOKBACK_MARGIN_H = 26.0


@dataclass(frozen=True, slots=True)
class Occurrences:
    pat: I64
    sev: I64
    at: F64
    value: F64
    since: F64

    @classmethod
    def of(cls, pat: object, sev: object, at: object, value: object, since: object | None = None) -> Occurrences:
        """Occurrences from aligned arrays (or scalars); entries with severity −1 or no time are dropped.

        The firing entries are selected first, so grids and long series cost one scan, not five copies.
        """
        p_arr = np.asarray(pat, dtype=np.int64)
        s_arr = np.asarray(sev, dtype=np.int64)
        a_arr = np.asarray(at, dtype=np.float64)
        shape = np.broadcast_shapes(p_arr.shape, s_arr.shape, a_arr.shape)
        keep = np.broadcast_to(s_arr >= 0, shape) & ~np.isnan(np.broadcast_to(a_arr, shape))
        idx = np.nonzero(keep)

        def pick(x: object, dtype: type) -> NDArray[Any]:
            arr: NDArray[Any] = np.asarray(x, dtype=dtype)
            return np.broadcast_to(arr, shape)[idx]

        return cls(
            pick(p_arr, np.int64),
            pick(s_arr, np.int64),
            pick(a_arr, np.float64),
            pick(value, np.float64),
            pick(at if since is None else since, np.float64),
        )

    @classmethod
    def from_grid(cls, sev: I64, at: F64, value: F64, evidence_days: float = 0.0) -> Occurrences:
        """Occurrences from patients × days grids (sev −1 where nothing fired).

        ``evidence_days``: how far back from the occurrence the readings it compares with go,
        so the evidence shows them (e.g. the three earlier mornings of HF1).
        """
        pat = np.arange(sev.shape[0])[:, None]
        return cls.of(pat, sev, at, value, at - evidence_days * SEC_PER_DAY)

    @classmethod
    def concat(cls, parts: list[Occurrences]) -> Occurrences:
        return cls(
            np.concatenate([p.pat for p in parts]),
            np.concatenate([p.sev for p in parts]),
            np.concatenate([p.at for p in parts]),
            np.concatenate([p.value for p in parts]),
            np.concatenate([p.since for p in parts]),
        )


@dataclass
class Context:
    """What one evaluation sees: the data, the cohort, the time and the day grid."""

    data: Dataset
    cohort: Cohort
    now: float
    grid: DayGrid = field(init=False)
    _cache: dict[str, object] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.grid = DayGrid.ending(self.now, GRID_DAYS)

    def s(self, key: str, hours: float | None = None) -> Series:
        """A series, optionally only its last ``hours`` (rules reading one day skip the other 27)."""
        full = self.data.get(key) or Series.empty()
        if hours is None:
            return full
        return self.cached(f"{key}@{hours}", lambda: full.after(self.now - hours * SEC_PER_HOUR))

    def pulses(self, hours: float | None = None) -> tuple[Series, Series]:
        """Resting pulse from either device (BP monitor, oximeter), kept as two sorted series."""
        return self.s(BP_PULSE, hours), self.s(OXIMETER_PULSE, hours)

    def cached(self, name: str, make: Callable[[], T]) -> T:
        """Shared intermediate results (sessions, day grids) computed once per evaluation."""
        if name not in self._cache:
            self._cache[name] = make()
        return cast(T, self._cache[name])

    def last_time(self, key: str) -> F64:
        """Each patient's newest reading time of a series (nan when none)."""
        return self.cached("last:" + key, lambda: self.s(key).last_time(self.cohort.n))

    def daily_sum(self, key: str) -> tuple[F64, F64]:
        return self.cached("dsum:" + key, lambda: daily_sum(self.s(key), self.grid, self.cohort.n))

    def daily_mean(self, key: str) -> tuple[F64, F64]:
        """Daily means from the cached sums (nan on days without readings)."""

        def make() -> tuple[F64, F64]:
            tot, cnt = self.daily_sum(key)
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan), cnt

        return self.cached("dmean:" + key, make)

    def daily_first(self, key: str) -> tuple[F64, F64]:
        return self.cached("dfirst:" + key, lambda: daily_first(self.s(key), self.grid, self.cohort.n))

    @property
    def today(self) -> int:
        return self.grid.n_days - 1


Params = Callable[[str], F64]
Evaluate = Callable[[Context, Params], Occurrences]


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    conditions: tuple[str, ...]  # empty: every patient
    reads: tuple[str, ...]
    window_s: float  # history the rule needs
    lookback_s: float  # occurrences this recent are current
    hysteresis_s: float  # clear this long → suggest resolution
    params: Mapping[str, float]
    severities: str  # human-readable severity mapping (for docs and evidence)
    evaluate: Evaluate
    # Cohort-wide constants (window lengths, control-chart settings): not per-patient
    # overridable, so they are kept apart from ``params`` and shown as such in the evidence.
    fixed: Mapping[str, float] = field(default_factory=dict)
    # Defaults that differ above an age: parameter -> (age in years, default above it).
    age_defaults: Mapping[str, tuple[float, float]] = field(default_factory=dict)


REGISTRY: dict[str, Rule] = {}


def rule(
    rule_id: str,
    title: str,
    *,
    conditions: tuple[str, ...],
    reads: tuple[str, ...],
    window_days: float,
    lookback_h: float,
    hysteresis_h: float,
    params: Mapping[str, float],
    severities: str,
    fixed: Mapping[str, float] | None = None,
    age_defaults: Mapping[str, tuple[float, float]] | None = None,
) -> Callable[[Evaluate], Evaluate]:
    def register(fn: Evaluate) -> Evaluate:
        REGISTRY[rule_id] = Rule(
            rule_id,
            title,
            conditions,
            reads,
            window_days * SEC_PER_DAY,
            lookback_h * SEC_PER_HOUR,
            hysteresis_h * SEC_PER_HOUR,
            dict(params),
            severities,
            fn,
            dict(fixed or {}),
            dict(age_defaults or {}),
        )
        return fn

    return register


def _sev(*levels: tuple[B, int]) -> I64:
    """Highest severity whose mask holds (−1 where none)."""
    out: I64 = np.full(levels[0][0].shape, NONE, dtype=np.int64)
    for mask, rank in levels:
        out = np.where(mask, np.maximum(out, rank), out)
    return out


# ---------------------------------------------------------------- diabetes


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
)
def d2(ctx: Context, p: Params) -> Occurrences:
    return _cgm_episode(ctx, p, above=False, strictly_longer=False, sev=HIGH)


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
    sev = _sev((s.v < p("medium_below_mmol_l")[s.pat], MEDIUM), (s.v < p("high_below_mmol_l")[s.pat], HIGH))
    return Occurrences.of(s.pat, sev, s.t, s.v)


@rule(
    "D6",
    "Rapidly falling glucose (CGM 15-min slope)",
    conditions=DIABETES,
    reads=(CGM,),
    window_days=1,
    lookback_h=6,
    hysteresis_h=0.5,
    params={"low_fall_mmol_l_min": 0.11, "medium_fall_mmol_l_min": 0.17},
    fixed={"slope_window_min": 15},
    severities="falling ≥ 0.11 mmol/L/min low; ≥ 0.17 medium",
)
def d6(ctx: Context, p: Params) -> Occurrences:
    s = ctx.s(CGM, CGM_RECENT_H)
    # The slope window is a rule constant here (per-patient lags would need one search per value).
    lag = float(REGISTRY["D6"].fixed["slope_window_min"]) * SEC_PER_MIN
    j = lag_index(s, lag, lag + 5 * SEC_PER_MIN)
    ok = j >= 0
    jj = np.maximum(j, 0)
    ok &= np.isfinite(s.v) & np.isfinite(s.v[jj])  # a censored value has no slope
    with np.errstate(invalid="ignore", divide="ignore"):
        fall = np.where(ok, (s.v[jj] - s.v) / ((s.t - s.t[jj]) / SEC_PER_MIN), np.nan)
        sev = _sev((fall >= p("low_fall_mmol_l_min")[s.pat], LOW), (fall >= p("medium_fall_mmol_l_min")[s.pat], MEDIUM))
    return Occurrences.of(s.pat, sev, s.t, fall, np.where(ok, s.t[jj], s.t))


@rule(
    "D5",
    "Predicted urgent low in 20 min (CGM linear forecast)",
    conditions=DIABETES,
    reads=(CGM,),
    window_days=1,
    lookback_h=2,
    hysteresis_h=0.5,
    params={"predicted_at_or_below_mmol_l": 3.1, "horizon_min": 20},
    severities="high; linear extrapolation of the 15-min slope, only while falling and not already < 3.9",
)
def d5(ctx: Context, p: Params) -> Occurrences:
    s = ctx.s(CGM, CGM_RECENT_H)
    lag = 15 * SEC_PER_MIN
    j = lag_index(s, lag, lag + 5 * SEC_PER_MIN)
    ok = j >= 0
    jj = np.maximum(j, 0)
    ok &= np.isfinite(s.v) & np.isfinite(s.v[jj])
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(ok, (s.v - s.v[jj]) / ((s.t - s.t[jj]) / SEC_PER_MIN), np.nan)  # mmol/L/min, + rising
        predicted = s.v + rate * p("horizon_min")[s.pat]
        # A low already present is D1/D2's business; D5 warns ahead of it.
        fired = ok & (rate < 0) & (s.v >= 3.9) & (predicted <= p("predicted_at_or_below_mmol_l")[s.pat])
    return Occurrences.of(s.pat, np.where(fired, HIGH, NONE), s.t, predicted, np.where(ok, s.t[jj], s.t))


@rule(
    "D7",
    "Hyperglycaemia (CGM > 13.9 mmol/L)",
    conditions=DIABETES,
    reads=(CGM,),
    window_days=1,
    lookback_h=24,
    hysteresis_h=0.25,
    params={"threshold_mmol_l": 13.9, "min_duration_min": 15, "type1_duration_min": 120},
    severities="≥ 15 min low; ≥ 2 h in type 1 medium (prompt ketone check)",
)
def d7(ctx: Context, p: Params) -> Occurrences:
    s = ctx.s(CGM, CGM_RECENT_H)
    cond = s.v > p("threshold_mmol_l")[s.pat]
    since = run_start_times(s, cond, CGM_MAX_GAP_S)
    dur = s.t - since
    t1 = ctx.cohort.has("diabetes_t1")[s.pat]
    with np.errstate(invalid="ignore"):
        sev = _sev(
            (cond & (dur >= p("min_duration_min")[s.pat] * SEC_PER_MIN), LOW),
            (cond & t1 & (dur >= p("type1_duration_min")[s.pat] * SEC_PER_MIN), MEDIUM),
        )
    return Occurrences.of(s.pat, sev, s.t, s.v, since)


def _cgm_14d(ctx: Context) -> tuple[Series, F64]:
    def make() -> tuple[Series, F64]:
        w = ctx.s(CGM).between(ctx.now - 14 * SEC_PER_DAY, ctx.now)
        return w, segment_sums(w, ctx.cohort.n, None)

    return ctx.cached("cgm14", make)


def _cgm_users(ctx: Context) -> B:
    return ctx.cohort.expects("glucose_cgm") | (ctx.last_time(CGM) > 0)


def _cgm_sufficient(ctx: Context, p_d9: Params) -> tuple[B, F64]:
    _, count = _cgm_14d(ctx)
    expected = 14 * 24 * 60 / p_d9("expected_interval_min")
    pct = count / expected * 100
    return pct >= p_d9("min_pct"), pct


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
    ok, pct = _cgm_sufficient(ctx, p)
    fire = _cgm_users(ctx) & ~ok
    return Occurrences.of(np.arange(ctx.cohort.n), np.where(fire, INFO, NONE), ctx.grid.bounds[-2], pct)


@rule(
    "D8",
    "14-day CGM metrics outside targets (TIR/TBR/TAR/CV)",
    conditions=DIABETES,
    reads=(CGM,),
    window_days=14,
    lookback_h=24,
    hysteresis_h=0,
    params={
        "tir_min_pct": 70,
        "tbr_3_9_max_pct": 4,
        "tbr_3_0_max_pct": 1,
        "tar_10_max_pct": 25,
        "tar_13_9_max_pct": 5,
        "cv_max_pct": 36,
    },
    severities="low (weekly review); only when D9 finds the data sufficient",
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
    d9p = _params_for(ctx.cohort, REGISTRY["D9"])
    sufficient, _ = _cgm_sufficient(ctx, d9p)
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
    return _gap(ctx, ctx.last_time(CGM), _cgm_users(ctx), p("info_after_h"), p("low_after_h"))


def _gap(ctx: Context, last: F64, applies: B, info_h: F64, low_h: F64) -> Occurrences:
    """Time-based no-data occurrence; its time is when the gap crossed the threshold."""
    start = np.where(np.isnan(last), ctx.now - ctx.grid.n_days * SEC_PER_DAY, last)
    gap_h = (ctx.now - start) / SEC_PER_HOUR
    sev = _sev((applies & (gap_h > info_h), INFO), (applies & (gap_h > low_h), LOW))
    at = np.where(sev == LOW, start + low_h * SEC_PER_HOUR, start + info_h * SEC_PER_HOUR)
    return Occurrences.of(np.arange(ctx.cohort.n), sev, np.minimum(at, ctx.now), gap_h, start)


# ---------------------------------------------------------------- heart failure


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
    sev = _sev((day_gain, LOW), (persists, MEDIUM))
    return Occurrences.from_grid(sev, mt, np.where(persists, mw - shift_cols(mw, 2), d1), 2.5)


@rule(
    "HF3",
    "7-day mean weight > dry weight + 2 kg",
    conditions=("heart_failure",),
    reads=(WEIGHT,),
    window_days=7,
    lookback_h=36,
    hysteresis_h=24,
    params={"excess_kg": 2.0},
    fixed={"min_days": 3},
    severities="medium (needs dry weight in the care plan)",
)
def hf3(ctx: Context, p: Params) -> Occurrences:
    mw, mt = _morning_weight(ctx)
    mean7 = rolling_mean(mw, 0, 6, int(REGISTRY["HF3"].fixed["min_days"]))
    excess = mean7 - ctx.cohort.dry_weight_kg[:, None]
    with np.errstate(invalid="ignore"):
        fired = (excess > p("excess_kg")[:, None]) & ~np.isnan(mw)
    return Occurrences.from_grid(np.where(fired, MEDIUM, NONE), mt, excess, 7.0)


@rule(
    "HF4",
    "Weight out of statistical control vs personal baseline (EWMA/CUSUM/MACD)",
    conditions=("heart_failure",),
    reads=(WEIGHT,),
    window_days=28,
    lookback_h=36,
    hysteresis_h=48,
    params={},
    fixed={"min_sigma_kg": 0.3, "cusum_h": 4.0, "cusum_k": 0.5, "ewma_lambda": 0.2, "macd_sd": 2.0},
    severities="medium; needs ≥ 7 baseline days in days −28..−8",
)
def hf4(ctx: Context, p: Params) -> Occurrences:
    mw, mt = _morning_weight(ctx)
    d = REGISTRY["HF4"].fixed
    # The control-chart constants are cohort-wide (per-patient charts would need per-patient loops);
    # the σ floor stops a perfectly stable weight from making 0.1 kg an alarm.
    base = baselines.median_mad(mw, min_sigma=float(d["min_sigma_kg"]))
    alarm = (
        baselines.ewma_alarm(mw, base, lam=float(d["ewma_lambda"]))
        | baselines.cusum_alarm(mw, base, k=float(d["cusum_k"]), h=float(d["cusum_h"]))
        | baselines.macd_alarm(mw, n_sd=float(d["macd_sd"]))
    )
    return Occurrences.from_grid(np.where(alarm, MEDIUM, NONE), mt, mw - base.median[:, None], 8.0)


def _bp_sessions(ctx: Context, key: str, hours: float | None = LOOKBACK_MARGIN_H) -> Sessions:
    """Sessions of the last ``hours`` (point rules need a day, not the whole 28-day load)."""
    return ctx.cached(f"sess:{key}@{hours}", lambda: sessions(ctx.s(key, hours), SESSION_GAP_S))


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
    ss = _bp_sessions(ctx, SYSTOLIC)
    sym = _symptom_days(ctx, SYMPTOM_HF)
    d = ctx.grid.day_of(ss.t)
    with_sym = (d >= 0) & sym[ss.pat, np.maximum(d, 0)]
    sev = _sev(
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
        sev = _sev(
            (ss.mean > p("medium_above_bpm")[ss.pat], MEDIUM),
            ((ss.mean <= p("high_at_or_below_bpm")[ss.pat]) | (ss.mean >= p("high_at_or_above_bpm")[ss.pat]), HIGH),
        )
        parts.append(Occurrences.of(ss.pat, sev, ss.t, ss.mean, ss.t_first))
    parts.append(_rise_two_days(ctx, ctx.pulses(), p("rise_bpm"), LOW))
    return Occurrences.concat(parts)


def _pulse_daily(ctx: Context, sources: tuple[Series, Series]) -> tuple[F64, F64]:
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


def _rise_two_days(ctx: Context, sources: tuple[Series, Series], rise: F64, sev: int) -> Occurrences:
    """Daily mean ≥ baseline + rise on two consecutive days; baseline = mean of the 7 days before them."""
    dm, ft = _pulse_daily(ctx, sources)
    base = rolling_mean(dm, 2, 8, 4)
    r = rise[:, None]
    with np.errstate(invalid="ignore"):
        fired = (dm - base >= r) & (shift_cols(dm, 1) - base >= r)
    return Occurrences.from_grid(np.where(fired, sev, NONE), ft, dm - base, 9.0)


def _confirmed(s: Series) -> tuple[B, F64]:
    """A reading confirmed by the previous one within CONFIRM_S; the confirmed level is the better of the two."""
    j = np.arange(len(s)) - 1
    ok = (j >= 0) & np.concatenate([[False], (s.pat[1:] == s.pat[:-1]) & (np.diff(s.t) <= CONFIRM_S)])
    prev = np.where(ok, s.v[np.maximum(j, 0)], np.nan)
    return ok, np.fmax(s.v, prev)


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
)
def hf7(ctx: Context, p: Params) -> Occurrences:
    s = ctx.s(SPO2, LOOKBACK_MARGIN_H)
    ok, level = _confirmed(s)
    with np.errstate(invalid="ignore"):
        sev = np.where(ok & (level <= p("high_at_or_below_pct")[s.pat]), HIGH, NONE)
    return Occurrences.of(s.pat, sev, s.t, level)


def _symptom_days(ctx: Context, keys: tuple[str, ...], min_items: int = 1) -> B:
    """Days (patients × days) on which at least min_items of the "worse" items were answered yes."""

    def make() -> F64:
        cnt: F64 = np.zeros((ctx.cohort.n, ctx.grid.n_days))
        for k in keys:
            mx = daily_reduce(ctx.s(k), ctx.grid, ctx.cohort.n, np.maximum)
            cnt += np.nan_to_num(mx, nan=0.0) >= 1
        return cnt

    cnt: F64 = ctx.cached("sym:" + ",".join(keys), make)
    return cnt >= min_items


def _symptom_times(ctx: Context, keys: tuple[str, ...]) -> F64:
    t = np.full((ctx.cohort.n, ctx.grid.n_days), np.nan)
    for k in keys:
        _, ft = ctx.daily_first(k)
        t = np.fmax(t, ft)
    return t


@rule(
    "HF8",
    "Worse heart-failure symptoms (daily form)",
    conditions=("heart_failure",),
    reads=SYMPTOM_HF,
    window_days=4,
    lookback_h=36,
    hysteresis_h=24,
    params={},
    severities="worse breathlessness, orthopnoea or oedema medium; with HF1 the same day high",
)
def hf8(ctx: Context, p: Params) -> Occurrences:
    sym = _symptom_days(ctx, SYMPTOM_HF)
    hf1_fired, _ = _hf1_grid(ctx, _params_for(ctx.cohort, REGISTRY["HF1"])("gain_kg"))
    sev = _sev((sym, MEDIUM), (sym & hf1_fired, HIGH))
    return Occurrences.from_grid(sev, _symptom_times(ctx, SYMPTOM_HF), sym.astype(np.float64))


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
    sev = _sev((run >= p("info_days"), INFO), (run >= p("low_days"), LOW))
    return Occurrences.of(np.arange(ctx.cohort.n), sev, ctx.grid.bounds[-2], run)


# ---------------------------------------------------------------- COPD


@rule(
    "C1",
    "Low SpO2 at rest (confirmed)",
    conditions=("copd",),
    reads=(SPO2,),
    window_days=1,
    lookback_h=24,
    hysteresis_h=24,
    params={"medium_below_pct": 92, "medium_below_pct_hypercapnic": 88, "high_below_pct": 88, "critical_below_pct": 85},
    severities="< 92 % medium (< 88 % with a hypercapnic 88–92 % target); < 88 % high; < 85 % critical",
)
def c1(ctx: Context, p: Params) -> Occurrences:
    s = ctx.s(SPO2, LOOKBACK_MARGIN_H)
    ok, level = _confirmed(s)
    med = np.where(ctx.cohort.hypercapnic, p("medium_below_pct_hypercapnic"), p("medium_below_pct"))[s.pat]
    with np.errstate(invalid="ignore"):
        sev = _sev(
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


@rule(
    "C3",
    "Combined SpO2 fall and pulse rise vs personal baseline (z-scores)",
    conditions=("copd",),
    reads=(SPO2, BP_PULSE, OXIMETER_PULSE),
    window_days=28,
    lookback_h=36,
    hysteresis_h=48,
    params={"min_score": 1.0},
    fixed={"min_sigma_spo2": 0.5, "min_sigma_pulse": 2.0},
    severities="medium when mean(z(SpO2 fall), z(pulse rise)) ≥ 1; baselines: median/MAD of days −28..−8 (≥ 7 days)",
)
def c3(ctx: Context, p: Params) -> Occurrences:
    spo2, _ = ctx.daily_mean(SPO2)
    _, ft = ctx.daily_first(SPO2)
    pulse, _ = _pulse_daily(ctx, ctx.pulses())
    d = REGISTRY["C3"].fixed
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
    severities="≥ 95 bpm or ≥ 10 bpm above the mean of the 7 days before: low",
)
def c4(ctx: Context, p: Params) -> Occurrences:
    dm, _ = _pulse_daily(ctx, ctx.pulses())
    base = rolling_mean(dm, 1, 7, 4)
    parts = []
    for s in ctx.pulses(LOOKBACK_MARGIN_H):
        d = ctx.grid.day_of(s.t)
        b = np.where(d >= 0, base[s.pat, np.maximum(d, 0)], np.nan)
        with np.errstate(invalid="ignore"):
            fired = (s.v >= p("at_or_above_bpm")[s.pat]) | (s.v - b >= p("rise_bpm")[s.pat])
        parts.append(Occurrences.of(s.pat, np.where(fired, LOW, NONE), s.t, s.v))
    return Occurrences.concat(parts)


@rule(
    "C5",
    "FEV1/PEF 7-day mean below personal mean − 1.645 SD",
    conditions=("copd",),
    reads=(FEV1, PEF),
    window_days=28,
    lookback_h=36,
    hysteresis_h=48,
    params={"n_sd": 1.645},
    fixed={"min_points": 7},
    severities="medium; needs ≥ 7 days in days −28..−8",
)
def c5(ctx: Context, p: Params) -> Occurrences:
    parts = []
    for key in (FEV1, PEF):
        dm, _ = ctx.daily_mean(key)
        _, ft = ctx.daily_first(key)
        block = dm[:, : ctx.today - 7]  # days −28..−8
        cnt = np.sum(~np.isnan(block), axis=1)
        ok = cnt >= int(REGISTRY["C5"].fixed["min_points"])
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


@rule(
    "C7",
    "≥ 2 worse COPD symptoms on ≥ 2 consecutive days",
    conditions=("copd",),
    reads=SYMPTOM_COPD,
    window_days=3,
    lookback_h=36,
    hysteresis_h=48,
    params={},
    fixed={"min_items": 2},
    severities="medium",
)
def c7(ctx: Context, p: Params) -> Occurrences:
    days = _symptom_days(ctx, SYMPTOM_COPD, int(REGISTRY["C7"].fixed["min_items"]))
    prev = np.zeros_like(days)
    prev[:, 1:] = days[:, :-1]
    fired = days & prev
    return Occurrences.from_grid(
        np.where(fired, MEDIUM, NONE), _symptom_times(ctx, SYMPTOM_COPD), fired.astype(np.float64)
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
        sev = _sev(
            (recent & (rise >= p("info_rise")[s.pat]), INFO), (recent & (rise >= p("medium_rise")[s.pat]), MEDIUM)
        )
    return Occurrences.of(s.pat, sev, s.t, rise)


# ---------------------------------------------------------------- asthma


def _pef_sessions(ctx: Context, hours: float | None = LOOKBACK_MARGIN_H) -> Sessions:
    return ctx.cached(f"pefs@{hours}", lambda: sessions(ctx.s(PEF, hours), SESSION_GAP_S))


def _pef_zone(ctx: Context, rule_id: str, sev: int, lower_rule: str | None) -> Occurrences:
    """PEF zones: best of a session's blows as % of personal best; each zone rule fires only in its band."""
    ss = _pef_sessions(ctx)
    pct = ss.max / ctx.cohort.personal_best_pef[ss.pat] * 100
    hi = _params_for(ctx.cohort, REGISTRY[rule_id])("below_pct")[ss.pat]
    with np.errstate(invalid="ignore"):
        fired = pct < hi
        if lower_rule is not None:
            fired &= pct >= _params_for(ctx.cohort, REGISTRY[lower_rule])("below_pct")[ss.pat]
    return Occurrences.of(ss.pat, np.where(fired, sev, NONE), ss.t, pct, ss.t_first)


_PEF_COMMON = {"conditions": ("asthma",), "reads": (PEF,), "window_days": 1, "lookback_h": 24, "hysteresis_h": 24}


@rule("A1", "PEF < 80 % of personal best (yellow zone)", params={"below_pct": 80}, severities="low", **_PEF_COMMON)  # type: ignore[arg-type]
def a1(ctx: Context, p: Params) -> Occurrences:
    return _pef_zone(ctx, "A1", LOW, "A2")


@rule("A2", "PEF < 60 % of personal best", params={"below_pct": 60}, severities="high", **_PEF_COMMON)  # type: ignore[arg-type]
def a2(ctx: Context, p: Params) -> Occurrences:
    return _pef_zone(ctx, "A2", HIGH, "A3")


@rule("A3", "PEF < 50 % of personal best (red zone)", params={"below_pct": 50}, severities="critical", **_PEF_COMMON)  # type: ignore[arg-type]
def a3(ctx: Context, p: Params) -> Occurrences:
    return _pef_zone(ctx, "A3", CRITICAL, None)


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


@rule(
    "A5",
    "PEF diurnal variability",
    conditions=("asthma",),
    reads=(PEF,),
    window_days=14,
    lookback_h=24,
    hysteresis_h=24 * 3,
    params={"max_pct": 10},
    fixed={"min_days": 7},
    severities="mean of (max − min)/mean(max, min) over ≥ 7 of the last 14 days > 10 %: low",
)
def a5(ctx: Context, p: Params) -> Occurrences:
    s = ctx.s(PEF)
    mx = daily_reduce(s, ctx.grid, ctx.cohort.n, np.maximum)
    mn = daily_reduce(s, ctx.grid, ctx.cohort.n, np.minimum)
    _, cnt = ctx.daily_mean(PEF)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(cnt >= 2, (mx - mn) / ((mx + mn) / 2) * 100, np.nan)
    mean = rolling_mean(var, 0, 13, int(REGISTRY["A5"].fixed["min_days"]))[:, -1]
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
        sev = _sev((used & (week > p("days_per_week")[:, None]), INFO), (rise, MEDIUM))
    return Occurrences.from_grid(sev, ft, day_sum, 9.0)


# ---------------------------------------------------------------- hypertension


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
)
def h3(ctx: Context, p: Params) -> Occurrences:
    sym = _symptom_days(ctx, SYMPTOM_HTN)
    parts = []
    for key, name in ((SYSTOLIC, "systolic_mmhg"), (DIASTOLIC, "diastolic_mmhg")):
        ss = _bp_sessions(ctx, key)
        d = ctx.grid.day_of(ss.t)
        with_symptoms = (d >= 0) & sym[ss.pat, np.maximum(d, 0)]
        high = ss.mean >= p(name)[ss.pat]
        sev = _sev((high, HIGH), (high & with_symptoms, CRITICAL))
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
        ss = _bp_sessions(ctx, key, 8 * 24.0)
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
    severities="medium (baseline: mean of daily means of the 7 days before, ≥ 4 days)",
)
def h5(ctx: Context, p: Params) -> Occurrences:
    ss = _bp_sessions(ctx, SYSTOLIC)
    dm, _ = ctx.daily_mean(SYSTOLIC)
    base = rolling_mean(dm, 1, 7, 4)
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


# ---------------------------------------------------------------- across conditions


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
        parts.append(_gap(ctx, last, per_day > 0, p("info_after_h"), p("low_after_h")))
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
    total, worst = news2_scores(vals[0], vals[1], vals[2], vals[3], ctx.cohort.hypercapnic)
    sev = _sev(((total >= 5) | (worst >= 3), HIGH), (total >= 7, CRITICAL))
    return Occurrences.of(np.arange(n), sev, newest, total)


def rule_param(cohort: Cohort, r: Rule, name: str) -> tuple[F64, B]:
    """A rule's parameter per patient (default, age default or care plan) and its source."""
    return cohort.param(r.id, name, float(r.params[name]), r.age_defaults.get(name))


def _params_for(cohort: Cohort, r: Rule) -> Params:
    def p(name: str) -> F64:
        return rule_param(cohort, r, name)[0]

    return p


IMPLEMENTED = tuple(REGISTRY)
