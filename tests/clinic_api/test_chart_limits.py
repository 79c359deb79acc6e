"""The charts' copy of the rule defaults matches the alerting engine's, and care-plan
overrides move the lines exactly as the engine reads them."""

from __future__ import annotations

import numpy as np
import pytest

from alerting.cohort import Cohort
from alerting.rules import REGISTRY, params_for
from clinic_api.chart_limits import (
    DEFAULTS,
    LINES,
    RULE_CONDITIONS,
    SAFETY_NET_EXCLUDES,
    bands_for,
    param,
    thresholds_for,
)


@pytest.mark.parametrize(("rule_id", "name"), sorted(DEFAULTS))
def test_defaults_match_the_engine(rule_id: str, name: str) -> None:
    rule = REGISTRY[rule_id]
    assert float(rule.params[name]) == pytest.approx(DEFAULTS[(rule_id, name)])
    assert name not in rule.age_defaults  # an age-dependent default would need the patient's age


def test_conditions_and_safety_nets_match_the_engine() -> None:
    for rule_id, conditions in RULE_CONDITIONS.items():
        assert REGISTRY[rule_id].conditions == conditions, rule_id
    drawn = {ln.rule_id for ln in LINES} | {"A1", "A2", "A3", "HF3"}
    for rule_id in drawn:
        rule = REGISTRY[rule_id]
        assert (rule.safety_net is not None) == (rule_id in SAFETY_NET_EXCLUDES), rule_id
        if rule.safety_net is not None:
            assert rule.safety_net_excludes == SAFETY_NET_EXCLUDES[rule_id]


def test_overrides_resolve_like_params_for() -> None:
    plans = [
        {"thresholds": {"D1": {"threshold_mmol_l": 4.0}, "H1": {"systolic_mmhg": 130}}},
        {"thresholds": {"D1": {"threshold_mmol_l": True}}},  # not a number: the default holds
        {},
    ]
    cohort = Cohort.build(
        ["a", "b", "c"], [["diabetes_t1", "hypertension"]] * 3, thresholds=[p.get("thresholds", {}) for p in plans]
    )
    for rule_id, name in DEFAULTS:
        engine = params_for(cohort, REGISTRY[rule_id])(name)
        ours = np.array([param(p, rule_id, name)[0] for p in plans])
        assert ours == pytest.approx(engine), (rule_id, name)
    assert param(plans[0], "D1", "threshold_mmol_l") == (4.0, "care_plan")
    assert param(plans[1], "D1", "threshold_mmol_l") == (3.9, "default")


def test_glucose_lines_with_a_d1_override() -> None:
    plan = {"conditions": ["diabetes_t1"], "thresholds": {"D1": {"threshold_mmol_l": 4.0}}}
    lines = {t.rule_id: t for t in thresholds_for("glucose_interstitial", plan)}
    assert lines["D1"].value == 4.0
    assert lines["D1"].source == "care_plan"
    assert lines["D1"].label == "D1 hypo nivå 1 4,0 (vårdplan)"
    assert lines["D2"].value == 3.0
    assert "vårdplan" not in lines["D2"].label
    default = {t.rule_id: t.value for t in thresholds_for("glucose_interstitial", {"conditions": ["diabetes_t1"]})}
    assert default == {"D2": 3.0, "D1": 3.9, "D7": 13.9}


def test_pef_zones_from_personal_best_and_spo2_band() -> None:
    plan = {"conditions": ["asthma"], "personal_best_pef": 500.0, "thresholds": {"A1": {"below_pct": 75}}}
    pef = {t.rule_id: t for t in thresholds_for("pef", plan)}
    assert pef["A1"].value == 375.0
    assert "(vårdplan)" in pef["A1"].label
    assert "75 %" in pef["A1"].label
    assert pef["A2"].value == 300.0
    assert pef["A3"].value == 250.0
    assert thresholds_for("pef", {"conditions": ["asthma"]}) == []  # no personal best, no zones
    copd = {"conditions": ["copd"], "spo2_target": "hypercapnic"}
    assert [b.lo for b in bands_for("spo2", copd)] == [88.0]
    assert [b.hi for b in bands_for("spo2", copd)] == [92.0]
    assert bands_for("spo2", {"conditions": ["copd"]}) == []
    # Hypercapnic: C1's medium limit is 88, merged with its high limit at 88.
    assert sorted(t.value for t in thresholds_for("spo2", copd)) == [85.0, 88.0]
    assert sorted(t.value for t in thresholds_for("spo2", {"conditions": ["copd"]})) == [85.0, 88.0, 92.0]


def test_lines_follow_the_patients_rules_and_safety_nets() -> None:
    both = sorted(t.value for t in thresholds_for("systolic", {"conditions": ["heart_failure", "hypertension"]}))
    assert both == [90.0, 100.0, 135.0, 180.0]  # H5 and HF5 at 90 share one line
    # An asthma patient measuring BP: only H3's safety net (≥ 180 / ≥ 110) judges it.
    assert [t.value for t in thresholds_for("systolic", {"conditions": ["asthma"]})] == [180.0]
    assert [t.value for t in thresholds_for("diastolic", {"conditions": ["asthma"]})] == [110.0]
    # HF7's safety net excludes COPD, whose patients live at 88–92 %.
    assert 91.0 in [t.value for t in thresholds_for("spo2", {"conditions": ["asthma"]})]
    assert 91.0 not in [t.value for t in thresholds_for("spo2", {"conditions": ["copd"]})]
    weight = thresholds_for("weight", {"conditions": ["heart_failure"], "dry_weight_kg": 82.0})
    assert [(t.value, t.danger) for t in weight] == [(82.0, False), (84.0, True)]
