"""The patients being evaluated and their care-plan parameters, as arrays on the patient index."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from alerting.series import F64, B
from device_profiles.vocabulary import Route

ROUTES = frozenset(r.value for r in Route)
T = TypeVar("T")


@dataclass
class Cohort:
    """Patient index i ↔ ``patient_ids[i]``; every array has one entry per patient.

    ``overrides`` holds care-plan threshold overrides sparsely: (rule id, parameter) →
    (patient indices, values). ``schedule`` maps a kind to expected readings per day.
    """

    patient_ids: list[str]
    conditions: dict[str, B]
    dry_weight_kg: F64
    personal_best_pef: F64
    hypercapnic: B
    schedule: dict[str, F64] = field(default_factory=dict)
    overrides: dict[tuple[str, str], tuple[np.ndarray, F64]] = field(default_factory=dict)
    pseudonyms: list[str] | None = None
    # Age in years (NaN unknown), for defaults that depend on age (H2's BP target).
    age_years: F64 | None = None
    # Care-plan routing overrides per patient index: {"<rule id>": "<route>"} (sparse).
    routing: dict[int, dict[str, str]] = field(default_factory=dict)
    # Care-plan confirmation switches per patient index: {"<rule id>": bool} (sparse); the
    # window is the numeric override ("confirmation", "within_min").
    confirm_rules: dict[int, dict[str, bool]] = field(default_factory=dict)
    # When monitoring began (the first care plan's valid_from, epoch s; NaN unknown): a gap
    # rule counts no days before it, so a patient enrolled this morning is not "missing" data.
    monitored_since: F64 | None = None

    @property
    def n(self) -> int:
        return len(self.patient_ids)

    @classmethod
    def build(
        cls,
        patient_ids: Sequence[str],
        conditions: Sequence[Sequence[str]],
        *,
        dry_weight_kg: Sequence[float | None] | None = None,
        personal_best_pef: Sequence[float | None] | None = None,
        hypercapnic: Sequence[bool] | None = None,
        thresholds: Sequence[Mapping[str, Mapping[str, object]]] | None = None,
        schedule: Sequence[Mapping[str, float]] | None = None,
        pseudonyms: Sequence[str] | None = None,
        age_years: Sequence[float | None] | None = None,
        monitored_since: Sequence[float | None] | None = None,
    ) -> Cohort:
        """Build from per-patient care-plan rows (the loader's path; the engine never loops)."""
        n = len(patient_ids)
        conds: dict[str, B] = {}
        for i, cs in enumerate(conditions):
            for c in cs:
                conds.setdefault(c, np.zeros(n, dtype=bool))[i] = True

        def floats(xs: Sequence[float | None] | None) -> F64:
            if xs is None:
                return np.full(n, np.nan)
            return np.asarray([np.nan if x is None else float(x) for x in xs], dtype=np.float64)

        overrides: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
        for i, th in enumerate(thresholds or []):
            for rule_id, params in (th or {}).items():
                if not isinstance(params, Mapping):
                    continue
                for name, value in params.items():
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        idx, vals = overrides.setdefault((rule_id, name), ([], []))
                        idx.append(i)
                        vals.append(float(value))
        routing = {
            i: {str(k): str(v) for k, v in th["routing"].items() if str(v) in ROUTES}
            for i, th in enumerate(thresholds or [])
            if isinstance(th, Mapping) and isinstance(th.get("routing"), Mapping)
        }
        confirm = {
            i: {str(k): v for k, v in th["confirmation"].items() if isinstance(v, bool)}
            for i, th in enumerate(thresholds or [])
            if isinstance(th, Mapping) and isinstance(th.get("confirmation"), Mapping)
        }
        sched: dict[str, list[float]] = {}
        for i, sc in enumerate(schedule or []):
            for kind, per_day in (sc or {}).items():
                if isinstance(per_day, int | float):
                    sched.setdefault(kind, [0.0] * n)[i] = float(per_day)
        return cls(
            patient_ids=list(patient_ids),
            conditions=conds,
            dry_weight_kg=floats(dry_weight_kg),
            personal_best_pef=floats(personal_best_pef),
            hypercapnic=np.asarray(hypercapnic if hypercapnic is not None else [False] * n, dtype=bool),
            schedule={k: np.asarray(v, dtype=np.float64) for k, v in sched.items()},
            overrides={
                k: (np.asarray(i, dtype=np.int64), np.asarray(v, dtype=np.float64)) for k, (i, v) in overrides.items()
            },
            pseudonyms=list(pseudonyms) if pseudonyms is not None else None,
            age_years=floats(age_years),
            routing={i: r for i, r in routing.items() if r},
            confirm_rules={i: c for i, c in confirm.items() if c},
            monitored_since=floats(monitored_since),
        )

    def slice(self, lo: int, hi: int) -> Cohort:
        """Patients ``lo`` to ``hi`` (exclusive) as a cohort of their own, indices renumbered from 0.

        The sweep loads a region once and evaluates it in chunks: each chunk is a slice.
        """
        hi = min(hi, self.n)

        def part(d: dict[int, dict[str, T]]) -> dict[int, dict[str, T]]:
            return {i - lo: v for i, v in d.items() if lo <= i < hi}

        overrides = {}
        for key, (idx, vals) in self.overrides.items():
            m = (idx >= lo) & (idx < hi)
            if m.any():
                overrides[key] = (idx[m] - lo, vals[m])
        return Cohort(
            patient_ids=self.patient_ids[lo:hi],
            conditions={c: a[lo:hi] for c, a in self.conditions.items()},
            dry_weight_kg=self.dry_weight_kg[lo:hi],
            personal_best_pef=self.personal_best_pef[lo:hi],
            hypercapnic=self.hypercapnic[lo:hi],
            schedule={k: a[lo:hi] for k, a in self.schedule.items()},
            overrides=overrides,
            pseudonyms=self.pseudonyms[lo:hi] if self.pseudonyms is not None else None,
            age_years=self.age_years[lo:hi] if self.age_years is not None else None,
            routing=part(self.routing),
            confirm_rules=part(self.confirm_rules),
            monitored_since=self.monitored_since[lo:hi] if self.monitored_since is not None else None,
        )

    def has(self, *conditions: str) -> B:
        out = np.zeros(self.n, dtype=bool)
        for c in conditions:
            if c in self.conditions:
                out |= self.conditions[c]
        return out

    def param(self, rule_id: str, name: str, default: float, older: tuple[float, float] | None = None) -> tuple[F64, B]:
        """The parameter per patient and whether it came from the care plan.

        ``older`` = (age, default): patients above that age get the other default (a care
        plan override still wins).
        """
        vals = np.full(self.n, float(default))
        if older is not None and self.age_years is not None:
            with np.errstate(invalid="ignore"):
                vals[self.age_years > older[0]] = older[1]
        src = np.zeros(self.n, dtype=bool)
        if (rule_id, name) in self.overrides:
            idx, v = self.overrides[(rule_id, name)]
            vals[idx] = v
            src[idx] = True
        return vals, src

    def since_monitoring(self, t: F64) -> F64:
        """``t`` moved forward to when monitoring began, where that is later."""
        if self.monitored_since is None:
            return t
        return np.fmax(t, self.monitored_since)

    def expects(self, kind: str) -> B:
        s = self.schedule.get(kind)
        return np.zeros(self.n, dtype=bool) if s is None else s > 0
