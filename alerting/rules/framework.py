"""The rules framework: occurrences, the evaluation context, the registry and its decorator.

The rules themselves live in one module per condition beside this one.

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
    daily_first,
    daily_sum,
)
from device_profiles.vocabulary import Severity

# Severity ranks (device_profiles.vocabulary.Severity.rank); -1 = does not fire.
NONE = -1
INFO = Severity.INFO.rank
LOW = Severity.LOW.rank
MEDIUM = Severity.MEDIUM.rank
HIGH = Severity.HIGH.rank
CRITICAL = Severity.CRITICAL.rank

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
    # Safety net: from this severity rank up, the rule applies to every patient who measures
    # what it reads, enrolled for its conditions or not (a BP of 188/112 from an asthma
    # patient); None = enrolled patients only. ``safety_net_excludes``: conditions for which
    # the value is expected and another rule judges it (COPD patients live at SpO2 88–92 %).
    safety_net: int | None = None
    safety_net_excludes: tuple[str, ...] = ()


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
    safety_net: int | None = None,
    safety_net_excludes: tuple[str, ...] = (),
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
            safety_net,
            safety_net_excludes,
        )
        return fn

    return register


def max_severity(*levels: tuple[B, int]) -> I64:
    """Highest severity whose mask holds (−1 where none)."""
    out: I64 = np.full(levels[0][0].shape, NONE, dtype=np.int64)
    for mask, rank in levels:
        out = np.where(mask, np.maximum(out, rank), out)
    return out


def rule_param(cohort: Cohort, r: Rule, name: str) -> tuple[F64, B]:
    """A rule's parameter per patient (default, age default or care plan) and its source."""
    return cohort.param(r.id, name, float(r.params[name]), r.age_defaults.get(name))


def params_for(cohort: Cohort, r: Rule) -> Params:
    def p(name: str) -> F64:
        return rule_param(cohort, r, name)[0]

    return p
