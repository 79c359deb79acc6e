"""Simulated episodes are the size the default rules detect, with a plausible false-alert rate.

Scored with the scalar reference rules in ``reference_rules.py`` (a subset of
CLINICAL_RULES.md); the real engine is scored the same way by ``python -m simulators score``.
"""

from __future__ import annotations

from simulators.cohort import CohortConfig, generate_cohort
from simulators.scoring import ANY_RULE, AlertRecord, score
from tests.simulators.reference_rules import reference_alerts


def test_default_rules_find_most_episodes_without_flooding_staff() -> None:
    cohort = generate_cohort(CohortConfig(60, seed=1, days=60))
    alerts: list[AlertRecord] = []
    for p in cohort.patients:
        alerts += reference_alerts(p, cohort.series(p))
    rows = score(alerts, cohort.episodes(), {p.pseudonym: p.conditions for p in cohort.patients}, cohort.config.days)
    overall = [r for r in rows if r.rule_id == ANY_RULE]
    assert {r.condition for r in overall} == {p.condition for p in cohort.patients}
    for r in overall:
        assert r.episodes >= 3, r
        assert r.sensitivity is not None
        assert r.sensitivity >= 0.8, r
        assert r.median_lead_h is not None
        assert r.median_lead_h > 0, r  # warned before the clinically meaningful point
        assert r.false_per_patient_month <= 4.0, r
    # Background variation does raise some false alerts, as with real patients.
    assert sum(r.false_per_patient_month for r in overall) > 0
    # Fixed weight rules alone miss some decompensations (CLINICAL_RULES.md, heart failure).
    hf1 = next(r for r in rows if r.rule_id == "HF1")
    assert hf1.sensitivity is not None
    assert hf1.sensitivity < 1.0
