"""A slow, obviously-correct reference implementation: plain Python, one patient at a time.

It restates the rules of alerting/rules/ from CLINICAL_RULES.md without numpy or any
vectorised trick, so the property tests can check the engine against it. It covers the
rules listed in RULES (device-driven point, run and day rules); the others are tested
with hand-built series only.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from datetime import datetime, timedelta

from alerting.cohort import Cohort
from alerting.series import LOCAL_TZ, Dataset

SEVERITIES = ("info", "low", "medium", "high", "critical")
INFO, LOW, MEDIUM, HIGH, CRITICAL = range(5)
MIN, HOUR, DAY = 60.0, 3600.0, 86400.0
CGM_RECENT = 28 * HOUR
DIABETES = ("diabetes_t1", "diabetes_t2")

Reading = tuple[float, float]  # (time, value)
Occ = tuple[int, float, float]  # (severity, time, value)


def _index(data: Dataset) -> dict[tuple[str, int], list[Reading]]:
    """Each patient's readings per series, sorted by time; of duplicates at one time the lowest value."""
    raw: dict[tuple[str, int], list[Reading]] = {}
    for key, s in data.items():
        for p, t, v in zip(s.pat.tolist(), s.t.tolist(), s.v.tolist(), strict=True):
            raw.setdefault((key, p), []).append((t, v))
    out: dict[tuple[str, int], list[Reading]] = {}
    for k, rows in raw.items():
        dedup: list[Reading] = []
        for t, v in sorted(rows):
            if dedup and dedup[-1][0] == t:
                continue
            dedup.append((t, v))
        out[k] = dedup
    return out


class Patient:
    def __init__(self, index: dict[tuple[str, int], list[Reading]], cohort: Cohort, i: int, now: float) -> None:
        self.index, self.cohort, self.i, self.now = index, cohort, i, now
        today = datetime.fromtimestamp(now, LOCAL_TZ).date()
        self.days = [today - timedelta(days=28 - k) for k in range(29)]

    def r(self, key: str) -> list[Reading]:
        return self.index.get((key, self.i), [])

    def p(self, rule: str, name: str, default: float) -> float:
        vals, _ = self.cohort.param(rule, name, default)
        return float(vals[self.i])

    def has(self, *conds: str) -> bool:
        return any(c in self.cohort.conditions and bool(self.cohort.conditions[c][self.i]) for c in conds)

    def day(self, t: float) -> int | None:
        d = datetime.fromtimestamp(t, LOCAL_TZ).date()
        return self.days.index(d) if d in self.days else None

    def day_start(self, k: int) -> float:
        d = self.days[k]
        return datetime(d.year, d.month, d.day, tzinfo=LOCAL_TZ).timestamp()


def _runs_since(rs: list[Reading], cond: Callable[[float], bool], max_gap: float) -> list[float | None]:
    """For each reading, when its run of condition-meeting readings began (None outside runs)."""
    out: list[float | None] = []
    for k, (t, v) in enumerate(rs):
        if not cond(v):
            out.append(None)
            continue
        start = t
        j = k
        while j > 0 and cond(rs[j - 1][1]) and rs[j][0] - rs[j - 1][0] <= max_gap:
            j -= 1
            start = rs[j][0]
        out.append(start)
    return out


def _episode(pt: Patient, rule: str, thr_d: float, dur_d: float, strict: bool, sev: int) -> list[Occ]:
    rs = [x for x in pt.r("glucose_cgm.glucose_interstitial") if x[0] > pt.now - CGM_RECENT]
    thr = pt.p(rule, "threshold_mmol_l", thr_d)
    need = pt.p(rule, "min_duration_min", dur_d) * MIN
    out = []
    for (t, v), since in zip(rs, _runs_since(rs, lambda x: x < thr, 20 * MIN), strict=True):
        if since is not None and ((t - since > need) if strict else (t - since >= need)):
            out.append((sev, t, v))
    return out


def d1(pt: Patient) -> list[Occ]:
    return _episode(pt, "D1", 3.9, 15, False, MEDIUM)


def d2(pt: Patient) -> list[Occ]:
    return _episode(pt, "D2", 3.0, 15, False, HIGH)


def d3(pt: Patient) -> list[Occ]:
    return _episode(pt, "D3", 3.9, 120, True, HIGH)


def d11(pt: Patient) -> list[Occ]:
    """Every level 2 onset (CGM < 3.0 for 15 min, or a capillary < 3.0) in time order, onsets
    within 2 h of the previous one merged; fires at the 3rd within 7 days and each later one."""
    thr = pt.p("D11", "threshold_mmol_l", 3.0)
    need = pt.p("D11", "min_duration_min", 15) * MIN
    days = pt.p("D11", "days", 7)
    horizon = pt.now - (days * 24 + 26) * HOUR
    rs = [x for x in pt.r("glucose_cgm.glucose_interstitial") if x[0] > horizon]
    onsets = []
    counted_run = None
    for (t, _), since in zip(rs, _runs_since(rs, lambda x: x < thr, 20 * MIN), strict=True):
        if since is not None and t - since >= need and since != counted_run:
            onsets.append(t)
            counted_run = since
    onsets += [t for t, v in pt.r("glucose_capillary.glucose") if t > horizon and v < thr]
    onsets.sort()
    merged = [t for k, t in enumerate(onsets) if k == 0 or t - onsets[k - 1] > 2 * HOUR]
    out = []
    for k, t in enumerate(merged):
        count = sum(1 for u in merged[: k + 1] if u >= t - days * DAY)
        if count >= pt.p("D11", "episodes", 3):
            out.append((HIGH, t, float(count)))
    return out


def d4(pt: Patient) -> list[Occ]:
    out = []
    for t, v in pt.r("glucose_capillary.glucose"):
        if v < pt.p("D4", "high_below_mmol_l", 3.0):
            out.append((HIGH, t, v))
        elif v < pt.p("D4", "medium_below_mmol_l", 3.9):
            out.append((MEDIUM, t, v))
    return out


def d6(pt: Patient) -> list[Occ]:
    rs = [x for x in pt.r("glucose_cgm.glucose_interstitial") if x[0] > pt.now - CGM_RECENT]
    out = []
    for k, (t, v) in enumerate(rs):
        prior = [(tj, vj) for tj, vj in rs[:k] if t - tj >= 15 * MIN]
        if not prior:
            continue
        tj, vj = prior[-1]
        if t - tj > 20 * MIN or abs(v) == float("inf") or abs(vj) == float("inf"):
            continue
        fall = (vj - v) / ((t - tj) / MIN)
        if fall >= pt.p("D6", "medium_fall_mmol_l_min", 0.17):
            out.append((MEDIUM, t, fall))
        elif fall >= pt.p("D6", "low_fall_mmol_l_min", 0.11):
            out.append((LOW, t, fall))
    return out


def d7(pt: Patient) -> list[Occ]:
    rs = [x for x in pt.r("glucose_cgm.glucose_interstitial") if x[0] > pt.now - CGM_RECENT]
    thr = pt.p("D7", "threshold_mmol_l", 13.9)
    out = []
    for (t, v), since in zip(rs, _runs_since(rs, lambda x: x > thr, 20 * MIN), strict=True):
        if since is None:
            continue
        dur = t - since
        long_min = (
            pt.p("D7", "type1_duration_min", 120) if pt.has("diabetes_t1") else pt.p("D7", "type2_duration_min", 120)
        )
        if dur >= pt.p("D7", "sustained_duration_min", 360) * MIN:
            out.append((HIGH, t, v))
        elif dur >= long_min * MIN:
            out.append((MEDIUM, t, v))
        elif dur >= pt.p("D7", "min_duration_min", 15) * MIN:
            out.append((LOW, t, v))
    return out


def _gap(pt: Patient, last: float | None, applies: bool, info_h: float, low_h: float) -> list[Occ]:
    if not applies:
        return []
    start = last if last is not None else pt.now - 29 * DAY
    gap_h = (pt.now - start) / HOUR
    if gap_h > low_h:
        return [(LOW, min(start + low_h * HOUR, pt.now), gap_h)]
    if gap_h > info_h:
        return [(INFO, min(start + info_h * HOUR, pt.now), gap_h)]
    return []


def d10(pt: Patient) -> list[Occ]:
    rs = pt.r("glucose_cgm.glucose_interstitial")
    applies = bool(rs) or pt.cohort.expects("glucose_cgm")[pt.i]
    return _gap(pt, rs[-1][0] if rs else None, applies, pt.p("D10", "info_after_h", 24), pt.p("D10", "low_after_h", 72))


def _morning(pt: Patient) -> dict[int, Reading]:
    out: dict[int, Reading] = {}
    for t, v in pt.r("weight.weight"):
        k = pt.day(t)
        if k is not None and k not in out:
            out[k] = (t, v)
    return out


def hf1(pt: Patient) -> list[Occ]:
    mw = _morning(pt)
    out = []
    for k, (t, v) in mw.items():
        prev = [mw[j][1] for j in (k - 1, k - 2, k - 3) if j in mw]
        if prev and v - min(prev) > pt.p("HF1", "gain_kg", 2.0):
            out.append((MEDIUM, t, v - min(prev)))
    return out


def hf2(pt: Patient) -> list[Occ]:
    mw = _morning(pt)
    g = pt.p("HF2", "gain_kg", 1.5)
    out = []
    for k, (t, v) in mw.items():
        if k - 1 in mw and k - 2 in mw and mw[k - 1][1] - mw[k - 2][1] >= g and v - mw[k - 2][1] >= g:
            out.append((MEDIUM, t, v - mw[k - 2][1]))
        elif k - 1 in mw and v - mw[k - 1][1] >= g:
            out.append((LOW, t, v - mw[k - 1][1]))
    return out


def hf3(pt: Patient) -> list[Occ]:
    dry = pt.cohort.dry_weight_kg[pt.i]
    if dry != dry:
        return []
    mw = _morning(pt)
    out = []
    for k, (t, _) in mw.items():
        week = [mw[j][1] for j in range(k - 6, k + 1) if j in mw]
        if len(week) >= 3 and sum(week) / len(week) - dry > pt.p("HF3", "excess_kg", 2.0):
            out.append((MEDIUM, t, sum(week) / len(week) - dry))
    return out


def hf9(pt: Patient) -> list[Occ]:
    mw = _morning(pt)
    run = 0
    k = 28
    while k >= 0 and k not in mw:
        run += 1
        k -= 1
    if run >= pt.p("HF9", "low_days", 3):
        return [(LOW, pt.day_start(28), run)]
    if run >= pt.p("HF9", "info_days", 2):
        return [(INFO, pt.day_start(28), run)]
    return []


def _sessions(rs: list[Reading]) -> list[tuple[float, float, float]]:
    """(last time, mean, max) of readings no more than 10 min apart."""
    groups: list[list[Reading]] = []
    for t, v in rs:
        if groups and t - groups[-1][-1][0] <= 10 * MIN:
            groups[-1].append((t, v))
        else:
            groups.append([(t, v)])
    return [(g[-1][0], sum(v for _, v in g) / len(g), max(v for _, v in g)) for g in groups]


def hf5(pt: Patient) -> list[Occ]:
    return [
        (HIGH, t, m) for t, m, _ in _sessions(pt.r("blood_pressure.systolic")) if m < pt.p("HF5", "high_below_mmhg", 90)
    ]


def _confirmed(rs: list[Reading]) -> list[tuple[float, float]]:
    return [(t, max(v, rs[k - 1][1])) for k, (t, v) in enumerate(rs) if k > 0 and t - rs[k - 1][0] <= 15 * MIN]


def hf7(pt: Patient) -> list[Occ]:
    return [(HIGH, t, lv) for t, lv in _confirmed(pt.r("spo2.spo2")) if lv <= pt.p("HF7", "high_at_or_below_pct", 91)]


def _spo2_target_low(pt: Patient) -> bool:
    """The 88–92 % target: a hypercapnic care plan, or COPD with an own SpO2 baseline ≤ 92 %.

    Baseline: median of the daily mean SpO2 on days −28..−8 (local days), at least 7 such days.
    """
    if bool(pt.cohort.hypercapnic[pt.i]):
        return True
    if not pt.has("copd"):
        return False
    by_day: dict[int, list[float]] = {}
    for t, v in pt.r("spo2.spo2"):
        k = pt.day(t)
        if k is not None and k <= 20:  # index 0 is day −28, index 20 day −8
            by_day.setdefault(k, []).append(v)
    means = [sum(vs) / len(vs) for vs in by_day.values()]
    return len(means) >= 7 and statistics.median(means) <= 92.0


def c1(pt: Patient) -> list[Occ]:
    hyper = _spo2_target_low(pt)
    med = pt.p("C1", "medium_below_pct_hypercapnic", 88) if hyper else pt.p("C1", "medium_below_pct", 92)
    out = []
    for t, lv in _confirmed(pt.r("spo2.spo2")):
        if lv < pt.p("C1", "critical_below_pct", 85):
            out.append((CRITICAL, t, lv))
        elif lv < pt.p("C1", "high_below_pct", 88):
            out.append((HIGH, t, lv))
        elif lv < med:
            out.append((MEDIUM, t, lv))
    return out


def _pef_zone(pt: Patient, sev: int, rule: str, default: float, floor: float | None, repeat: bool = False) -> list[Occ]:
    """Sessions in the zone; with ``repeat`` the previous session within 24 h must be below too, else info."""
    best = pt.cohort.personal_best_pef[pt.i]
    if best != best:
        return []
    out = []
    below = pt.p(rule, "below_pct", default)
    prev: tuple[float, float] | None = None  # (time, pct) of the previous session
    for t, _, mx in _sessions(pt.r("spirometry.pef")):
        pct = mx / best * 100
        in_zone = pct < below and (floor is None or pct >= pt.p(rule, "band_floor_pct", floor))
        if in_zone:
            confirmed = prev is not None and t - prev[0] <= pt.p(rule, "repeat_within_h", 24) * HOUR and prev[1] < below
            out.append((sev if confirmed or not repeat else INFO, t, pct))
        prev = (t, pct)
    return out


def a1(pt: Patient) -> list[Occ]:
    return _pef_zone(pt, LOW, "A1", 80, 60, repeat=True)


def a2(pt: Patient) -> list[Occ]:
    return _pef_zone(pt, HIGH, "A2", 60, 50)


def a3(pt: Patient) -> list[Occ]:
    return _pef_zone(pt, CRITICAL, "A3", 50, None)


def h3(pt: Patient) -> list[Occ]:
    symptom_days = {pt.day(t) for t, v in pt.r("symptoms.hypertensive_symptoms") if v >= 1} - {None}
    out = []
    for key, name, d in (
        ("blood_pressure.systolic", "systolic_mmhg", 180),
        ("blood_pressure.diastolic", "diastolic_mmhg", 110),
    ):
        for t, m, _ in _sessions(pt.r(key)):
            if m >= pt.p("H3", name, d):
                out.append((CRITICAL if pt.day(t) in symptom_days else HIGH, t, m))
    return out


def _news_pulse(v: float) -> int:
    return 3 if v <= 40 else 1 if v <= 50 else 0 if v <= 90 else 1 if v <= 110 else 2 if v <= 130 else 3


def _news_spo2(v: float, scale2: bool) -> int:
    if scale2:
        return 3 if v <= 83 else 2 if v <= 85 else 1 if v <= 87 else 0
    return 3 if v <= 91 else 2 if v <= 93 else 1 if v <= 95 else 0


def _news_sys(v: float) -> int:
    return 3 if v <= 90 else 2 if v <= 100 else 1 if v <= 110 else 0 if v <= 219 else 3


def _news_temp(v: float) -> int:
    return 3 if v <= 35.0 else 1 if v <= 36.0 else 0 if v <= 38.0 else 1 if v <= 39.0 else 2


def news2(pt: Patient) -> list[Occ]:
    horizon = pt.now - pt.p("NEWS2", "recent_min", 60) * MIN

    def latest(key: str) -> Reading | None:
        rs = [x for x in pt.r(key) if x[0] <= pt.now]
        return rs[-1] if rs and rs[-1][0] > horizon else None

    bp, ox = latest("blood_pressure.pulse"), latest("spo2.pulse")
    pulse = ox if ox is not None and (bp is None or ox[0] > bp[0]) else bp
    scored = []
    for r, score in (
        (pulse, _news_pulse),
        (latest("spo2.spo2"), lambda v: _news_spo2(v, _spo2_target_low(pt))),
        (latest("blood_pressure.systolic"), _news_sys),
        (latest("temperature.temperature"), _news_temp),
    ):
        if r is not None:
            scored.append((r[0], score(r[1])))
    if not scored:
        return []
    total = sum(s for _, s in scored)
    at = max(t for t, _ in scored)
    if total >= 7:
        return [(CRITICAL, at, total)]
    if total >= 5 or max(s for _, s in scored) >= 3:
        return [(HIGH, at, total)]
    return []


def _cgm_14d(pt: Patient, rule: str, min_pct_param: str) -> tuple[list[float], float, bool]:
    """(values of the last 14 days, % of expected readings, sufficient by that rule's own parameters)."""
    vals = [v for t, v in pt.r("glucose_cgm.glucose_interstitial") if pt.now - 14 * DAY < t <= pt.now]
    expected = 14 * 24 * 60 / pt.p(rule, "expected_interval_min", 5)
    pct = len(vals) / expected * 100
    return vals, pct, pct >= pt.p(rule, min_pct_param, 70)


def d9(pt: Patient) -> list[Occ]:
    users = bool(pt.r("glucose_cgm.glucose_interstitial")) or bool(pt.cohort.expects("glucose_cgm")[pt.i])
    _, pct, ok = _cgm_14d(pt, "D9", "min_pct")
    return [(INFO, pt.day_start(28), pct)] if users and not ok else []


def d8(pt: Patient) -> list[Occ]:
    vals, _, ok = _cgm_14d(pt, "D8", "min_data_pct")
    if not ok or not vals:
        return []
    n = len(vals)

    def pct(k: int) -> float:
        return k / n * 100

    b0 = pct(sum(1 for v in vals if v < 3.0))
    b1 = pct(sum(1 for v in vals if 3.0 <= v < 3.9))
    tir = pct(sum(1 for v in vals if 3.9 <= v <= 10.0))
    b3 = pct(sum(1 for v in vals if 10.0 < v <= 13.9))
    b4 = pct(sum(1 for v in vals if v > 13.9))
    numeric = [v for v in vals if abs(v) != float("inf")]
    cv = float("nan")
    if len(numeric) >= 2:
        mean = sum(numeric) / len(numeric)
        var = (sum(v * v for v in numeric) - len(numeric) * mean * mean) / (len(numeric) - 1)
        cv = max(var, 0.0) ** 0.5 / mean * 100
    breach = (
        tir < pt.p("D8", "tir_min_pct", 70)
        or b0 + b1 >= pt.p("D8", "tbr_3_9_max_pct", 4)
        or b0 >= pt.p("D8", "tbr_3_0_max_pct", 1)
        or b3 + b4 >= pt.p("D8", "tar_10_max_pct", 25)
        or b4 >= pt.p("D8", "tar_13_9_max_pct", 5)
        or cv > pt.p("D8", "cv_max_pct", 36)
    )
    return [(LOW, pt.day_start(28), tir)] if breach else []


def _bp_week(pt: Patient, key: str) -> tuple[float, int]:
    """Sum and count of the readings on the last 7 calendar days, day 1 of the 7 discarded."""
    days: dict[int, float] = {}
    n = 0
    for t, v in pt.r(key):
        k = pt.day(t)
        if k is not None and k >= 23:
            days[k] = days.get(k, 0.0) + v
            n += 1
    return sum(days.get(k, 0.0) for k in range(23, 29)), n


def h1(pt: Patient) -> list[Occ]:
    s_tot, n = _bp_week(pt, "blood_pressure.systolic")
    d_tot, nd = _bp_week(pt, "blood_pressure.diastolic")
    if n < pt.p("H1", "min_readings", 12):
        return []
    hit = s_tot / n >= pt.p("H1", "systolic_mmhg", 135) or (nd > 0 and d_tot / nd >= pt.p("H1", "diastolic_mmhg", 85))
    return [(LOW, pt.day_start(28), s_tot / n)] if hit else []


def h6(pt: Patient) -> list[Occ]:
    users = bool(pt.r("blood_pressure.systolic")) or bool(pt.cohort.expects("blood_pressure")[pt.i])
    _, n = _bp_week(pt, "blood_pressure.systolic")
    return [(INFO, pt.day_start(28), n)] if users and n < pt.p("H6", "min_readings", 12) else []


# rule id → (conditions (empty: all), lookback hours, function)
RULES: dict[str, tuple[tuple[str, ...], float, Callable[[Patient], list[Occ]]]] = {
    "D1": (DIABETES, 24, d1),
    "D2": (DIABETES, 24, d2),
    "D3": (DIABETES, 24, d3),
    "D4": (DIABETES, 24, d4),
    "D6": (DIABETES, 6, d6),
    "D7": (DIABETES, 24, d7),
    "D8": (DIABETES, 24, d8),
    "D9": (DIABETES, 24, d9),
    "D10": (DIABETES, 24 * 365, d10),
    "D11": (DIABETES, 24, d11),
    "HF1": (("heart_failure",), 36, hf1),
    "HF2": (("heart_failure",), 36, hf2),
    "HF3": (("heart_failure",), 36, hf3),
    "HF5": (("heart_failure",), 24, hf5),
    "HF7": (("heart_failure",), 24, hf7),
    "HF9": (("heart_failure",), 24, hf9),
    "C1": (("copd",), 24, c1),
    "A1": (("asthma",), 24, a1),
    "A2": (("asthma",), 24, a2),
    "A3": (("asthma",), 24, a3),
    "H1": (("hypertension",), 24, h1),
    "H3": (("hypertension",), 24, h3),
    "H6": (("hypertension",), 24, h6),
    "NEWS2": ((), 24, news2),
}


# Issue 12's safety net: life-threatening levels apply to every patient who measures the kind,
# from this severity up, except patients of the listed conditions (COPD lives at SpO2 88-92 %).
SAFETY_NET: dict[str, tuple[int, tuple[str, ...]]] = {
    "D2": (HIGH, ()),
    "H3": (HIGH, ()),
    "HF7": (HIGH, ("copd",)),
    "C1": (CRITICAL, ()),
    "A3": (CRITICAL, ()),
}


def reference_findings(data: Dataset, cohort: Cohort, now: float) -> set[tuple[int, str, str, float]]:
    """{(patient, rule, severity, time)}: per patient and rule the most severe, then newest, occurrence."""
    out = set()
    index = _index(data)
    for i in range(cohort.n):
        pt = Patient(index, cohort, i, now)
        for rule_id, (conds, lookback_h, fn) in RULES.items():
            floor = INFO
            if conds and not pt.has(*conds):
                if rule_id not in SAFETY_NET or pt.has(*SAFETY_NET[rule_id][1]):
                    continue
                floor = SAFETY_NET[rule_id][0]
            occ = [o for o in fn(pt) if now - lookback_h * HOUR < o[1] <= now and o[0] >= floor]
            if occ:
                sev, t, _ = max(occ, key=lambda o: (o[0], o[1]))
                out.add((i, rule_id, SEVERITIES[sev], t))
    return out
