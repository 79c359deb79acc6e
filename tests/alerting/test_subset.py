"""subset.take: an evaluation restricted to some patients decides exactly what the whole one does for them."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerting.cohort import Cohort
from alerting.engine import evaluate
from alerting.series import Series
from alerting.subset import COHORT_FIELDS, take
from tests.alerting.helpers import NOW
from tests.alerting.test_properties import cohorts


def test_take_restricts_every_cohort_field() -> None:
    # A field added to Cohort must be restricted by take() too, or a sweep batch would see the
    # whole chunk's value for it.
    assert {f.name for f in dataclasses.fields(Cohort)} == COHORT_FIELDS


def test_take_renumbers_sparse_care_plan_settings() -> None:
    c = Cohort.build(
        ["a", "b", "c"],
        [["diabetes_t1"], ["diabetes_t2"], ["copd"]],
        thresholds=[
            {"D4": {"medium_below_mmol_l": 4.0}},
            {"routing": {"D6": "staff"}, "D4": {"high_below_mmol_l": 3.2}},
            {"confirmation": {"C1": False}, "routing": {"C1": "record"}},
        ],
        schedule=[{"glucose_cgm": 288.0}, {}, {"spo2": 1.0}],
        pseudonyms=["P-a", "P-b", "P-c"],
        age_years=[30.0, None, 70.0],
        monitored_since=[1.0, 2.0, 3.0],
    )
    sub, _, _ = take(c, {}, [], [1, 2])
    assert sub.patient_ids == ["b", "c"]
    assert sub.pseudonyms == ["P-b", "P-c"]
    assert sub.routing == {0: {"D6": "staff"}, 1: {"C1": "record"}}
    assert sub.confirm_rules == {1: {"C1": False}}
    assert sub.has("diabetes_t2").tolist() == [True, False]
    assert sub.schedule["spo2"].tolist() == [0.0, 1.0]
    assert sub.schedule["glucose_cgm"].tolist() == [0.0, 0.0]
    assert sub.age_years is not None
    assert np.isnan(sub.age_years[0])
    assert sub.age_years[1] == 70.0
    assert sub.monitored_since is not None
    assert sub.monitored_since.tolist() == [2.0, 3.0]
    assert sub.param("D4", "high_below_mmol_l", 3.0)[0].tolist() == [3.2, 3.0]
    assert sub.param("D4", "medium_below_mmol_l", 3.9)[0].tolist() == [3.9, 3.9]  # a's override left with a


def test_take_wants_ascending_indices() -> None:
    c = Cohort.build(["a", "b"], [[], []])
    with pytest.raises(ValueError, match="ascending"):
        take(c, {}, [], [1, 0])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cohorts(), st.data())
def test_evaluating_a_subset_gives_the_wholes_findings_for_it(
    case: tuple[dict[str, Series], Cohort], pick: Any
) -> None:
    data, cohort = case
    keep = sorted(pick.draw(st.sets(st.integers(0, cohort.n - 1))))
    whole = evaluate(data, cohort, NOW)
    sub, sub_data, sub_findings = take(cohort, data, whole, keep)
    assert sub.n == len(keep)
    new = {old: i for i, old in enumerate(keep)}
    expected = {
        (new[f.patient], f.rule_id, f.severity, f.at, f.newest_at, f.first_at) for f in whole if f.patient in new
    }
    # What the sweep writes (the whole chunk's findings, restricted) ...
    assert {(f.patient, f.rule_id, f.severity, f.at, f.newest_at, f.first_at) for f in sub_findings} == expected
    # ... is what evaluating only those patients finds, evidence included.
    again = evaluate(sub_data, sub, NOW)
    assert {(f.patient, f.rule_id, f.severity, f.at, f.newest_at, f.first_at) for f in again} == expected
    by_key = {(f.patient, f.rule_id): f.evidence for f in sub_findings}
    for f in again:
        assert f.evidence == by_key[(f.patient, f.rule_id)]
