"""The threshold lines of each chart: the alerting engine's rule parameters as the care plan
in force sets them.

clinic_api does not import alerting (the services meet through the database), so the
defaults the charts need are copied here from CLINICAL_RULES.md's rule table;
``tests/clinic_api/test_chart_limits.py`` checks every entry against
``alerting.rules.REGISTRY`` and ``params_for`` so the two cannot drift. A care plan's
``thresholds`` entry (``{"D1": {"threshold_mmol_l": 4.0}}``) overrides a default exactly as
the engine reads it; the line then moves and its label says *vårdplan*.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from clinic_api.labels import TZ, number

F64 = npt.NDArray[np.float64]

# (rule id, parameter) → default, as alerting.rules.REGISTRY holds it.
DEFAULTS: Mapping[tuple[str, str], float] = {
    ("D1", "threshold_mmol_l"): 3.9,
    ("D2", "threshold_mmol_l"): 3.0,
    ("D4", "high_below_mmol_l"): 3.0,
    ("D4", "medium_below_mmol_l"): 3.9,
    ("D7", "threshold_mmol_l"): 13.9,
    ("HF3", "excess_kg"): 2.0,
    ("HF5", "high_below_mmhg"): 90,
    ("HF5", "medium_below_mmhg"): 100,
    ("HF6", "medium_above_bpm"): 100,
    ("HF6", "high_at_or_below_bpm"): 40,
    ("HF6", "high_at_or_above_bpm"): 131,
    ("HF7", "high_at_or_below_pct"): 91,
    ("C1", "medium_below_pct"): 92,
    ("C1", "medium_below_pct_hypercapnic"): 88,
    ("C1", "high_below_pct"): 88,
    ("C1", "critical_below_pct"): 85,
    ("C4", "at_or_above_bpm"): 95,
    ("C5", "n_sd"): 1.645,
    ("A1", "below_pct"): 80,
    ("A2", "below_pct"): 60,
    ("A3", "below_pct"): 50,
    ("H1", "systolic_mmhg"): 135,
    ("H1", "diastolic_mmhg"): 85,
    ("H3", "systolic_mmhg"): 180,
    ("H3", "diastolic_mmhg"): 110,
    ("H5", "below_mmhg"): 90,
}
# The rules' conditions and safety nets (REGISTRY's ``conditions``, ``safety_net``,
# ``safety_net_excludes``): a line is drawn when the rule judges this patient at all.
RULE_CONDITIONS: Mapping[str, tuple[str, ...]] = {
    "D1": ("diabetes_t1", "diabetes_t2"),
    "D2": ("diabetes_t1", "diabetes_t2"),
    "D4": ("diabetes_t1", "diabetes_t2"),
    "D7": ("diabetes_t1", "diabetes_t2"),
    "HF3": ("heart_failure",),
    "HF5": ("heart_failure",),
    "HF6": ("heart_failure",),
    "HF7": ("heart_failure",),
    "C1": ("copd",),
    "C4": ("copd",),
    "C5": ("copd",),
    "A1": ("asthma",),
    "A2": ("asthma",),
    "A3": ("asthma",),
    "H1": ("hypertension",),
    "H3": ("hypertension",),
    "H5": ("hypertension",),
}
# Rule id → conditions excluded from its safety net; present = the rule has one.
SAFETY_NET_EXCLUDES: Mapping[str, tuple[str, ...]] = {
    "D2": (),
    "HF7": ("copd",),
    "C1": (),
    "A3": (),
    "H3": (),
}
# Rules with a safety net judge everyone only from that severity up: the line drawn for a
# patient outside the rule's conditions is the parameter of that severity.
SAFETY_NET_PARAMS: Mapping[str, tuple[str, ...]] = {
    "D2": ("threshold_mmol_l",),
    "HF7": ("high_at_or_below_pct",),
    "C1": ("critical_below_pct",),
    "A3": ("below_pct",),
    "H3": ("systolic_mmhg", "diastolic_mmhg"),
}
# Decimals a component's values are written with.
DECIMALS: Mapping[str, int] = {
    "glucose_interstitial": 1,
    "glucose": 1,
    "weight": 1,
    "temperature": 1,
    "fev1": 2,
}


@dataclass(frozen=True, slots=True)
class Threshold:
    value: float
    label: str  # full text of the line's label, value and source included
    danger: bool = False
    rule_id: str | None = None
    source: str = "default"  # "default", "care_plan" (an override or a care-plan value) or "fixed"


@dataclass(frozen=True, slots=True)
class Band:
    lo: float
    hi: float
    label: str


@dataclass(frozen=True, slots=True)
class _Line:
    component: str
    rule_id: str
    param: str
    text: str
    danger: bool
    hypercapnic: bool | None = None  # only for (True) or only without (False) a hypercapnic plan


# Per component: the rule parameters drawn, in the order listed.
LINES: tuple[_Line, ...] = (
    _Line("glucose_interstitial", "D2", "threshold_mmol_l", "hypo nivå 2", True),
    _Line("glucose_interstitial", "D1", "threshold_mmol_l", "hypo nivå 1", False),
    _Line("glucose_interstitial", "D7", "threshold_mmol_l", "hyperglykemi", True),
    _Line("glucose", "D4", "high_below_mmol_l", "lågt, hög prioritet", True),
    _Line("glucose", "D4", "medium_below_mmol_l", "lågt", False),
    _Line("systolic", "H3", "systolic_mmhg", "mycket högt", True),
    _Line("systolic", "H1", "systolic_mmhg", "hemblodtryck, 7-dagarsmedel", False),
    _Line("systolic", "H5", "below_mmhg", "lågt", True),
    _Line("systolic", "HF5", "high_below_mmhg", "lågt, hög prioritet", True),
    _Line("systolic", "HF5", "medium_below_mmhg", "lågt", False),
    _Line("diastolic", "H3", "diastolic_mmhg", "mycket högt", True),
    _Line("diastolic", "H1", "diastolic_mmhg", "hemblodtryck, 7-dagarsmedel", False),
    _Line("pulse", "HF6", "high_at_or_above_bpm", "takykardi, hög prioritet", True),
    _Line("pulse", "HF6", "medium_above_bpm", "takykardi", False),
    _Line("pulse", "C4", "at_or_above_bpm", "hög vilopuls", False),
    _Line("pulse", "HF6", "high_at_or_below_bpm", "bradykardi", True),
    _Line("spo2", "C1", "medium_below_pct", "låg", False, hypercapnic=False),
    _Line("spo2", "C1", "medium_below_pct_hypercapnic", "under målområdet", False, hypercapnic=True),
    _Line("spo2", "HF7", "high_at_or_below_pct", "låg, bekräftad", True),
    _Line("spo2", "C1", "high_below_pct", "låg, hög prioritet", True),
    _Line("spo2", "C1", "critical_below_pct", "kritiskt låg", True),
)
PEF_ZONES: tuple[tuple[str, str, bool], ...] = (
    ("A1", "gul zon", False),
    ("A2", "under 60 %", True),
    ("A3", "röd zon", True),
)


def override(plan: Mapping[str, Any] | None, rule_id: str, param: str) -> float | None:
    """The care plan's value for one rule parameter, read as the engine reads it (numbers only)."""
    th = (plan or {}).get("thresholds") or {}
    entry = th.get(rule_id) if isinstance(th, Mapping) else None
    value = entry.get(param) if isinstance(entry, Mapping) else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def param(plan: Mapping[str, Any] | None, rule_id: str, name: str) -> tuple[float, str]:
    """A rule parameter in force for this patient and its source ("care_plan" or "default")."""
    v = override(plan, rule_id, name)
    return (v, "care_plan") if v is not None else (float(DEFAULTS[(rule_id, name)]), "default")


def _applies(rule_id: str, name: str, conditions: set[str]) -> bool:
    if conditions & set(RULE_CONDITIONS.get(rule_id, ())):
        return True
    if rule_id in SAFETY_NET_EXCLUDES and not conditions & set(SAFETY_NET_EXCLUDES[rule_id]):
        return name in SAFETY_NET_PARAMS[rule_id]
    return False


def _fmt(component: str, value: float) -> str:
    return number(value, DECIMALS.get(component, 0))


def _label(rule_id: str | None, text: str, shown: str, source: str) -> str:
    head = f"{rule_id} {text}" if rule_id else text[:1].upper() + text[1:]
    return f"{head} {shown}" + (" (vårdplan)" if source == "care_plan" else "")


def thresholds_for(component: str, plan: Mapping[str, Any] | None) -> list[Threshold]:
    """The lines to draw on one component's chart for the care plan in force.

    Lines with the same value are merged into one (labels joined), so two rules at 90 mmHg
    draw one line.
    """
    plan = plan or {}
    conditions = {str(c) for c in plan.get("conditions") or ()}
    hypercapnic = plan.get("spo2_target") == "hypercapnic"
    out: list[Threshold] = []
    for ln in LINES:
        if ln.component != component or not _applies(ln.rule_id, ln.param, conditions):
            continue
        if ln.hypercapnic is not None and ln.hypercapnic != hypercapnic:
            continue
        v, src = param(plan, ln.rule_id, ln.param)
        out.append(Threshold(v, _label(ln.rule_id, ln.text, _fmt(component, v), src), ln.danger, ln.rule_id, src))
    if component == "weight" and plan.get("dry_weight_kg"):
        dry = float(plan["dry_weight_kg"])
        excess, src = param(plan, "HF3", "excess_kg")
        dry_label = _label(None, "torrvikt", _fmt(component, dry), "care_plan")
        out.append(Threshold(dry, dry_label, False, None, "care_plan"))
        out.append(
            Threshold(
                dry + excess,
                _label("HF3", f"torrvikt + {number(excess, 1)} kg", _fmt(component, dry + excess), src),
                True,
                "HF3",
                src,
            )
        )
    if component == "pef" and plan.get("personal_best_pef"):
        best = float(plan["personal_best_pef"])
        for rule_id, text, danger in PEF_ZONES:
            if not _applies(rule_id, "below_pct", conditions):
                continue
            pct, src = param(plan, rule_id, "below_pct")
            value = best * pct / 100.0
            shown = f"{number(pct, 0)} % = {_fmt(component, value)}"
            out.append(Threshold(value, _label(rule_id, text, shown, src), danger, rule_id, src))
    if component == "temperature":
        # Not a rule parameter (NEWS2 scores temperature in fixed bands): a reading aid only.
        out.append(Threshold(38.0, "Feber 38,0", False, None, "fixed"))
    return _merge(out)


def _merge(lines: Sequence[Threshold]) -> list[Threshold]:
    merged: dict[float, Threshold] = {}
    for t in lines:
        key = round(t.value, 6)
        if key in merged:
            m = merged[key]
            source = "care_plan" if "care_plan" in (m.source, t.source) else m.source
            merged[key] = Threshold(m.value, f"{m.label}; {t.label}", m.danger or t.danger, m.rule_id, source)
        else:
            merged[key] = t
    return list(merged.values())


def bands_for(component: str, plan: Mapping[str, Any] | None) -> list[Band]:
    """Target ranges drawn as a shaded band: SpO2 88–92 % on a hypercapnic care plan."""
    if component == "spo2" and (plan or {}).get("spo2_target") == "hypercapnic":
        return [Band(88.0, 92.0, "Målområde 88–92 % (hyperkapni)")]
    return []


def c5_limit(t_s: F64, values: F64, now: dt.datetime, n_sd: float, min_days: int = 7) -> float | None:
    """C5's personal limit for FEV1/PEF: mean − n_sd × SD of the daily means of days −28..−8
    (Europe/Stockholm days, today = day 0), needing ``min_days`` days with data; else None."""
    today = now.astimezone(TZ).date()
    lo = dt.datetime.combine(today - dt.timedelta(days=28), dt.time(), TZ).timestamp()
    hi = dt.datetime.combine(today - dt.timedelta(days=7), dt.time(), TZ).timestamp()
    keep = (t_s >= lo) & (t_s < hi)
    if not keep.any():
        return None
    days = np.array([dt.datetime.fromtimestamp(t, TZ).date().toordinal() for t in t_s[keep]])
    uniq, inv = np.unique(days, return_inverse=True)
    if len(uniq) < min_days:
        return None
    means = np.bincount(inv, weights=values[keep]) / np.bincount(inv)
    return float(means.mean() - n_sd * means.std(ddof=1))
