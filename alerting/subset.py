"""Some of an evaluation's patients: the cohort, dataset and findings restricted to them.

The sweep loads and evaluates a chunk at once but writes it in smaller batches (so a
notified patient never waits long behind the sweep's writes), and leaves out the patients
the notify evaluator has evaluated meanwhile. Every rule and every lifecycle decision is
per patient, so writing a subset decides exactly what writing the whole chunk would for
those patients. Patient indices are renumbered (``keep`` is ascending), so series stay
sorted by (patient, time); a finding's lazily built evidence still reads the full data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from alerting.cohort import Cohort
from alerting.engine import Finding
from alerting.series import Dataset, Series


def take(
    cohort: Cohort, data: Dataset, findings: Sequence[Finding], keep: Sequence[int]
) -> tuple[Cohort, Dataset, list[Finding]]:
    """The cohort's patients at the (ascending) indices ``keep``, renumbered 0..len(keep)-1."""
    idx = np.asarray(keep, dtype=np.int64)
    if len(idx) > 1 and not (np.diff(idx) > 0).all():
        raise ValueError("keep must be ascending and without repeats")
    new_of = np.full(cohort.n, -1, dtype=np.int64)
    new_of[idx] = np.arange(len(idx))

    def remap_sparse(d: dict[int, dict[str, str]] | dict[int, dict[str, bool]]) -> dict[int, dict[str, object]]:
        return {int(new_of[i]): dict(v) for i, v in d.items() if new_of[i] >= 0}

    overrides = {}
    for key, (at, vals) in cohort.overrides.items():
        m = new_of[at] >= 0
        if m.any():
            overrides[key] = (new_of[at[m]], vals[m])
    sub = Cohort(
        patient_ids=[cohort.patient_ids[i] for i in idx],
        conditions={c: a[idx] for c, a in cohort.conditions.items()},
        dry_weight_kg=cohort.dry_weight_kg[idx],
        personal_best_pef=cohort.personal_best_pef[idx],
        hypercapnic=cohort.hypercapnic[idx],
        schedule={k: a[idx] for k, a in cohort.schedule.items()},
        overrides=overrides,
        pseudonyms=None if cohort.pseudonyms is None else [cohort.pseudonyms[i] for i in idx],
        age_years=None if cohort.age_years is None else cohort.age_years[idx],
        routing={i: {k: str(v) for k, v in r.items()} for i, r in remap_sparse(cohort.routing).items()},
        confirm_rules={i: {k: bool(v) for k, v in r.items()} for i, r in remap_sparse(cohort.confirm_rules).items()},
        monitored_since=None if cohort.monitored_since is None else cohort.monitored_since[idx],
    )
    sub_data: Dataset = {}
    for series_key, s in data.items():
        m = new_of[s.pat] >= 0
        sub_data[series_key] = Series(new_of[s.pat[m]], s.t[m], s.v[m])
    sub_findings = [dataclasses.replace(f, patient=int(new_of[f.patient])) for f in findings if new_of[f.patient] >= 0]
    return sub, sub_data, sub_findings


# The fields ``take`` restricts: a field added to Cohort must be added there too (a test checks).
COHORT_FIELDS = frozenset(
    {
        "patient_ids",
        "conditions",
        "dry_weight_kg",
        "personal_best_pef",
        "hypercapnic",
        "schedule",
        "overrides",
        "pseudonyms",
        "age_years",
        "routing",
        "confirm_rules",
        "monitored_since",
    }
)
