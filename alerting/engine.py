"""One evaluation: every registered rule over every enrolled patient, then evidence for the findings."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property, partial
from typing import Any

import numpy as np

from alerting.cohort import Cohort
from alerting.rules import REGISTRY, Context, Occurrences, Rule, params_for, rule_param
from alerting.series import F64, Dataset, Series
from device_profiles.vocabulary import Severity

# Names by Severity.rank: the rules' integer ranks index this.
SEVERITIES = tuple(s.value for s in sorted(Severity, key=lambda s: s.rank))
MAX_EVIDENCE_READINGS = 50


@dataclass(frozen=True)
class Finding:
    """A rule's condition holds for a patient: the most severe (then newest) occurrence in its lookback.

    The evidence (thresholds in force with their source, the triggering readings) is built on
    first access: a sweep over a region yields many findings whose alerts need no change.
    """

    patient: int
    rule_id: str
    severity: str
    at: float
    value: float
    since: float
    make_evidence: Callable[[], dict[str, Any]] | None = field(default=None, compare=False, repr=False)
    # The newest occurrence of any severity in the lookback (``at`` is the most severe one's):
    # a repeat measurement that still fires, even at a lower severity, is newer than ``at``.
    newest_at: float | None = field(default=None, compare=False)
    # The oldest occurrence of any severity in the lookback: earlier than ``at`` when the
    # condition was already seen once before (a repeat that confirmed it).
    first_at: float | None = field(default=None, compare=False)

    @property
    def latest(self) -> float:
        return self.at if self.newest_at is None else max(self.at, self.newest_at)

    @property
    def earliest(self) -> float:
        return self.at if self.first_at is None else min(self.at, self.first_at)

    @cached_property
    def evidence(self) -> dict[str, Any]:
        return self.make_evidence() if self.make_evidence is not None else {}

    @property
    def key(self) -> tuple[int, str, str, float]:
        return (self.patient, self.rule_id, self.severity, self.at)


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def best_per_patient(occ: Occurrences, enrolled: np.ndarray, now: float, lookback_s: float) -> Occurrences:
    """Per patient, the occurrence with the highest severity, ties broken by the newest time."""
    keep = enrolled[occ.pat] & (occ.at <= now) & (occ.at > now - lookback_s) & (occ.sev >= 0)
    pat, sev, at, val, since = occ.pat[keep], occ.sev[keep], occ.at[keep], occ.value[keep], occ.since[keep]
    if len(pat) == 0:
        return Occurrences(pat, sev, at, val, since)
    order = np.lexsort((at, sev, pat))
    pat, sev, at, val, since = pat[order], sev[order], at[order], val[order], since[order]
    last = np.ones(len(pat), dtype=bool)
    last[:-1] = pat[1:] != pat[:-1]
    return Occurrences(pat[last], sev[last], at[last], val[last], since[last])


def occurrence_span(occ: Occurrences, n: int, now: float, lookback_s: float) -> tuple[F64, F64]:
    """Per patient, the times of the oldest and the newest occurrence in the lookback (±inf: none)."""
    keep = (occ.at <= now) & (occ.at > now - lookback_s) & (occ.sev >= 0)
    first, newest = np.full(n, np.inf), np.full(n, -np.inf)
    np.minimum.at(first, occ.pat[keep], occ.at[keep])
    np.maximum.at(newest, occ.pat[keep], occ.at[keep])
    return first, newest


def _json_value(v: float) -> float | str | None:
    if math.isnan(v):
        return None
    if math.isinf(v):
        return "LOW" if v < 0 else "HIGH"  # censored sensor reading
    return round(v, 4)


def evidence_for(
    rule: Rule,
    params: dict[str, tuple[F64, np.ndarray]],
    data: Dataset,
    i: int,
    *,
    sev: int,
    at: float,
    value: float,
    since: float,
) -> dict[str, Any]:
    thresholds = {
        name: {"value": float(vals[i]), "source": "care_plan" if src[i] else "default"}
        for name, (vals, src) in params.items()
    }
    readings = []
    lo = min(since, at) - 1.0
    for key in rule.reads:
        s = data.get(key)
        if s is None or len(s) == 0:
            continue
        a, b = np.searchsorted(s.pat, [i, i + 1])
        t = s.t[a:b]
        m = (t > lo) & (t <= at)
        for tt, vv in list(zip(t[m], s.v[a:b][m], strict=True))[-MAX_EVIDENCE_READINGS:]:
            readings.append({"series": key, "at": iso(float(tt)), "value": _json_value(float(vv))})
    return {
        "rule": rule.id,
        "title": rule.title,
        "severity": SEVERITIES[sev],
        "severity_mapping": rule.severities,
        "at": iso(at),
        "since": iso(since),
        "value": _json_value(value),
        "thresholds": thresholds,
        "constants": {name: float(v) for name, v in rule.fixed.items()},
        "readings": readings,
    }


def coverage(rule: Rule, cohort: Cohort) -> tuple[np.ndarray, np.ndarray]:
    """(enrolled, safety net): the patients a rule judges at every severity, and those it
    judges only from its safety-net severity up (not enrolled, not of an excluded condition)."""
    if not rule.conditions:
        return np.ones(cohort.n, dtype=bool), np.zeros(cohort.n, dtype=bool)
    enrolled = cohort.has(*rule.conditions)
    if rule.safety_net is None:
        return enrolled, np.zeros(cohort.n, dtype=bool)
    return enrolled, ~enrolled & ~cohort.has(*rule.safety_net_excludes)


def counted(rule: Rule, occ: Occurrences, enrolled: np.ndarray, net: np.ndarray) -> Occurrences:
    """The occurrences that count: enrolled patients' at every severity, the safety net's from its level up."""
    if rule.safety_net is None:
        return occ
    keep = enrolled[occ.pat] | (net[occ.pat] & (occ.sev >= rule.safety_net))
    return Occurrences(occ.pat[keep], occ.sev[keep], occ.at[keep], occ.value[keep], occ.since[keep])


def evaluate(
    data: Dataset,
    cohort: Cohort,
    now: float,
    rules: Iterable[str] | None = None,
    with_evidence: bool = True,
) -> list[Finding]:
    """Evaluate the rules over all patients of the cohort at time ``now`` (epoch seconds)."""
    ctx = Context(data, cohort, now)
    findings: list[Finding] = []
    for rule_id in rules if rules is not None else REGISTRY:
        rule = REGISTRY[rule_id]
        enrolled, net = coverage(rule, cohort)
        if not (enrolled.any() or net.any()):
            continue
        occ = counted(rule, rule.evaluate(ctx, params_for(cohort, rule)), enrolled, net)
        best = best_per_patient(occ, enrolled | net, now, rule.lookback_s)
        first, newest = occurrence_span(occ, cohort.n, now, rule.lookback_s)
        params = {name: rule_param(cohort, rule, name) for name in rule.params}
        for k in range(len(best.pat)):
            i, sev, at = int(best.pat[k]), int(best.sev[k]), float(best.at[k])
            val, since = float(best.value[k]), float(best.since[k])
            make = (
                partial(evidence_for, rule, params, data, i, sev=sev, at=at, value=val, since=since)
                if with_evidence
                else None
            )
            findings.append(
                Finding(i, rule.id, SEVERITIES[sev], at, val, since, make, float(newest[i]), float(first[i]))
            )
    return findings


def evaluate_columns(
    data: Dataset, cohort: Cohort, now: float, rules: Iterable[str] | None = None
) -> dict[str, Occurrences]:
    """Per rule, the per-patient best occurrences as arrays, without building Finding objects."""
    ctx = Context(data, cohort, now)
    out = {}
    for rule in (REGISTRY[r] for r in (rules if rules is not None else REGISTRY)):
        enrolled, net = coverage(rule, cohort)
        occ = counted(rule, rule.evaluate(ctx, params_for(cohort, rule)), enrolled, net)
        out[rule.id] = best_per_patient(occ, enrolled | net, now, rule.lookback_s)
    return out


def make_dataset(rows: dict[str, tuple[F64, F64, F64]]) -> Dataset:
    """Series from unsorted (patient, time, value) arrays; a convenience for loaders and tests."""
    return {k: Series.build(p, t, v) for k, (p, t, v) in rows.items()}
