"""A fixed-threshold baseline detector, run on a cohort's raw simulated readings.

What a simple telemonitoring service with published fixed thresholds would raise, so
the rules engine can be compared with it on the same cohort (simulators/README.md):

* ``CGM_LOW``: CGM below 3.0 mmol/L for at least 15 minutes (consecutive readings);
* ``WEIGHT_GAIN``: weight at least 2 kg above the lowest weight of the previous 3 days;
* ``BP_HIGH``: systolic >= 180 or diastolic >= 110 mm Hg;
* ``SPO2_LOW``: SpO2 below 88 %;
* ``PEF_LOW``: PEF below 60 % of the care plan's personal best;
* ``PULSE_HIGH``: pulse above 120 /min (from SpO2 or blood-pressure readings).

At most one alert per patient, rule and UTC day; every baseline alert counts as shown
to staff at the reading's time. Duplicate resends (same reading time) count once.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import numpy as np

from device_profiles.vocabulary import Kind
from simulators.cohort import PatientSpec
from simulators.scoring import StaffAlert
from simulators.series import DAY_S, KindSeries, PatientSeries, to_datetime

CGM_LOW_MMOL = 3.0
CGM_LOW_MIN_S = 15 * 60
WEIGHT_GAIN_KG = 2.0
WEIGHT_WINDOW_S = 3 * DAY_S
SBP_HIGH = 180.0
DBP_HIGH = 110.0
SPO2_LOW = 88.0
PEF_LOW_FRACTION = 0.60
PULSE_HIGH = 120.0


def _unique(s: KindSeries) -> KindSeries:
    _, first = np.unique(s.t_s, return_index=True)
    mask = np.zeros(len(s), dtype=bool)
    mask[first] = True
    return s.select(mask)


def cgm_low_times(t_s: np.ndarray, glucose: np.ndarray) -> list[int]:
    """Times at which a run below the CGM threshold has lasted 15 minutes."""
    out: list[int] = []
    run_start: int | None = None
    fired = False
    for t, g in zip(t_s.tolist(), glucose.tolist(), strict=True):
        if g < CGM_LOW_MMOL:
            if run_start is None:
                run_start, fired = t, False
            if not fired and t - run_start >= CGM_LOW_MIN_S:
                out.append(t)
                fired = True
        else:
            run_start = None
    return out


def weight_gain_times(t_s: np.ndarray, weight: np.ndarray) -> list[int]:
    """Times of weights >= 2 kg above the minimum of the preceding 3 days."""
    out: list[int] = []
    for i in range(len(t_s)):
        lo = np.searchsorted(t_s, t_s[i] - WEIGHT_WINDOW_S, side="left")
        if lo < i and weight[i] - weight[lo:i].min() >= WEIGHT_GAIN_KG:
            out.append(int(t_s[i]))
    return out


def patient_baseline_times(patient: PatientSpec, sim: PatientSeries) -> dict[str, list[int]]:
    """Per baseline rule, the reading times that cross its threshold."""
    hits: dict[str, list[int]] = {}
    pulse_t: list[int] = []
    for kind, raw in sim.series.items():
        s = _unique(raw)
        v = s.values
        if kind is Kind.GLUCOSE_CGM:
            hits["CGM_LOW"] = cgm_low_times(s.t_s, v["glucose_interstitial"])
        elif kind is Kind.WEIGHT:
            hits["WEIGHT_GAIN"] = weight_gain_times(s.t_s, v["weight"])
        elif kind is Kind.BLOOD_PRESSURE:
            hits["BP_HIGH"] = s.t_s[(v["systolic"] >= SBP_HIGH) | (v["diastolic"] >= DBP_HIGH)].tolist()
        elif kind is Kind.SPO2:
            hits["SPO2_LOW"] = s.t_s[v["spo2"] < SPO2_LOW].tolist()
        elif kind is Kind.SPIROMETRY and "pef" in v:
            best = patient.params.get("personal_best_pef")
            if best:
                pef = v["pef"]
                hits["PEF_LOW"] = s.t_s[np.isfinite(pef) & (pef < PEF_LOW_FRACTION * float(best))].tolist()
        if kind in (Kind.SPO2, Kind.BLOOD_PRESSURE) and "pulse" in v:
            p = v["pulse"]
            pulse_t.extend(s.t_s[np.isfinite(p) & (p > PULSE_HIGH)].tolist())
    hits["PULSE_HIGH"] = sorted(pulse_t)
    return hits


def one_per_day(rule: str, patient: str, times: Iterable[int]) -> list[StaffAlert]:
    """The first crossing of each UTC day becomes an alert."""
    seen: set[int] = set()
    out: list[StaffAlert] = []
    for t in sorted(times):
        day = t // DAY_S
        if day in seen:
            continue
        seen.add(day)
        at: datetime = to_datetime(t)
        out.append(StaffAlert(patient, rule, at, at))
    return out


def baseline_alerts(patients: Iterable[tuple[PatientSpec, PatientSeries]], lo_s: int, hi_s: int) -> list[StaffAlert]:
    """Baseline alerts of readings measured in [lo_s, hi_s)."""
    out: list[StaffAlert] = []
    for patient, sim in patients:
        for rule, times in patient_baseline_times(patient, sim).items():
            out.extend(one_per_day(rule, patient.pseudonym, (t for t in times if lo_s <= t < hi_s)))
    return out
