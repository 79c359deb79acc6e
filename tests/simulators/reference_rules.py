"""A small scalar reference of some default rules (CLINICAL_RULES.md), for scoring the models.

Not the rules engine (that is `alerting`, vectorised, with care-plan overrides): a plain,
readable check that the simulated episodes are the size the default rules detect, and that
background variation raises some, but not too many, false alerts. Alert lifecycle: one open
alert per (patient, rule); it is resolved once the rule has not fired for ``clear_s``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from device_profiles.vocabulary import Condition, Kind
from simulators.cohort import PatientSpec
from simulators.scoring import AlertRecord
from simulators.series import DAY_S, HOUR_S, MINUTE_S, PatientSeries, to_datetime


def _openings(fire_t: list[int], clear_s: int) -> list[int]:
    opened: list[int] = []
    last = None
    for t in sorted(fire_t):
        if last is None or t - last > clear_s:
            opened.append(t)
        last = t
    return opened


def _runs(t: np.ndarray, cond: np.ndarray, min_len: int, max_gap_s: int) -> list[int]:
    """Times at which ``cond`` has held for ``min_len`` consecutive readings."""
    fires = []
    run = 0
    prev = None
    for ti, ci in zip(t.tolist(), cond.tolist(), strict=True):
        run = run + 1 if ci and (prev is None or ti - prev <= max_gap_s or run == 0) else (1 if ci else 0)
        prev = ti
        if run >= min_len:
            fires.append(ti)
    return fires


def _window(t: np.ndarray, i: int, lo_s: int, hi_s: int) -> slice:
    a, b = np.searchsorted(t, [t[i] - lo_s, t[i] - hi_s], side="left")
    return slice(int(a), int(b))


def evaluate(patient: PatientSpec, sim: PatientSeries) -> Iterator[tuple[str, str, int]]:
    """(rule id, severity, opened at epoch s) for every alert the reference rules open."""
    s = sim.series
    daily = 2 * DAY_S
    if Kind.GLUCOSE_CGM in s:
        cgm = s[Kind.GLUCOSE_CGM]
        g = cgm.values["glucose_interstitial"]
        for rule, sev, cond in (("D1", "medium", g < 3.9), ("D2", "high", g < 3.0), ("D7", "low", g > 13.9)):
            for t in _openings(_runs(cgm.t_s, cond, 3, 10 * MINUTE_S), 6 * HOUR_S):
                yield rule, sev, t
        cap = s[Kind.GLUCOSE_CAPILLARY]
        low = cap.t_s[cap.values["glucose"] < 3.9].tolist()
        for t in _openings(low, 6 * HOUR_S):
            yield "D4", "medium", t
    if Kind.WEIGHT in s:
        w = s[Kind.WEIGHT]
        x, t = w.values["weight"], w.t_s
        hf1, hf3 = [], []
        dry = patient.params["dry_weight_kg"]
        for i in range(len(t)):
            prev = x[_window(t, i, int(3.5 * DAY_S), DAY_S // 2)]
            if prev.size and x[i] - prev.min() > 2.0:
                hf1.append(int(t[i]))
            week = x[_window(t, i, 7 * DAY_S, -1)]
            if week.size >= 4 and week.mean() > dry + 2.0:
                hf3.append(int(t[i]))
        yield from (("HF1", "medium", t0) for t0 in _openings(hf1, daily))
        yield from (("HF3", "medium", t0) for t0 in _openings(hf3, daily))
    if Kind.BLOOD_PRESSURE in s and patient.condition is Condition.HEART_FAILURE:
        bp = s[Kind.BLOOD_PRESSURE]
        yield from (("HF5", "high", t0) for t0 in _openings(bp.t_s[bp.values["systolic"] < 90].tolist(), daily))
        yield from (("HF6", "medium", t0) for t0 in _openings(bp.t_s[bp.values["pulse"] > 100].tolist(), daily))
    if Kind.SPO2 in s:
        ox = s[Kind.SPO2]
        spo2, t = ox.values["spo2"], ox.t_s
        if patient.condition is Condition.HEART_FAILURE:
            yield from (("HF7", "high", t0) for t0 in _openings(t[spo2 <= 91].tolist(), daily))
        else:
            limit = 88 if patient.care_plan()["spo2_target"] == "hypercapnic" else 92
            yield from (("C1", "medium", t0) for t0 in _openings(t[spo2 < limit].tolist(), daily))
            c2 = []
            for i in range(len(t)):
                base = spo2[_window(t, i, 7 * DAY_S, DAY_S // 2)]
                if base.size >= 4 and spo2[i] <= np.median(base) - 4:
                    c2.append(int(t[i]))
            yield from (("C2", "medium", t0) for t0 in _openings(c2, daily))
    if Kind.SPIROMETRY in s:
        sp = s[Kind.SPIROMETRY]
        pef, t = sp.values["pef"], sp.t_s
        best = patient.params.get("personal_best_pef")
        if best:
            yield from (("A1", "low", t0) for t0 in _openings(t[pef < 0.8 * best].tolist(), daily))
            yield from (("A2", "high", t0) for t0 in _openings(t[pef < 0.6 * best].tolist(), daily))
        else:
            c5 = []
            for i in range(len(t)):
                base = pef[_window(t, i, 28 * DAY_S, 8 * DAY_S)]
                recent = pef[_window(t, i, 3 * DAY_S, -1)]
                if base.size >= 7 and recent.mean() < base.mean() - 1.645 * base.std(ddof=1):
                    c5.append(int(t[i]))
            yield from (("C5", "medium", t0) for t0 in _openings(c5, daily))
    if Kind.BLOOD_PRESSURE in s and patient.condition is Condition.HYPERTENSION:
        bp = s[Kind.BLOOD_PRESSURE]
        t, sys_, dia = bp.t_s, bp.values["systolic"], bp.values["diastolic"]
        # Sessions are duplicates a minute or two apart: average each pair.
        session = np.concatenate([[0], np.cumsum(np.diff(t) > 10 * MINUTE_S)])
        n = int(session.max()) + 1
        st = np.array([t[session == k][0] for k in range(n)])
        ss = np.array([sys_[session == k].mean() for k in range(n)])
        sd = np.array([dia[session == k].mean() for k in range(n)])
        h3 = st[(ss >= 180) | (sd >= 110)].tolist()
        yield from (("H3", "high", t0) for t0 in _openings(h3, daily))
        high_days = st[(ss >= 160) | (sd >= 100)]
        h4 = [
            int(x)
            for x in high_days
            if np.unique(high_days[(high_days > x - 7 * DAY_S) & (high_days <= x)] // DAY_S).size >= 2
        ]
        yield from (("H4", "medium", t0) for t0 in _openings(h4, daily))
        h1 = []
        for i in range(n):
            m = (st > st[i] - 7 * DAY_S) & (st <= st[i])
            if m.sum() >= 6 and (ss[m].mean() >= 135 or sd[m].mean() >= 85):
                h1.append(int(st[i]))
        yield from (("H1", "low", t0) for t0 in _openings(h1, 7 * DAY_S))


def reference_alerts(patient: PatientSpec, sim: PatientSeries) -> list[AlertRecord]:
    return [AlertRecord(patient.pseudonym, r, to_datetime(t), sev) for r, sev, t in evaluate(patient, sim)]
