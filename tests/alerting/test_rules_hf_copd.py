"""Heart-failure and COPD rules on hand-built series."""

from __future__ import annotations

from alerting.rules import BP_PULSE, CAT, FEV1, OXIMETER_PULSE, SPO2, SYMPTOM_COPD, SYMPTOM_HF, SYSTOLIC, WEIGHT
from tests.alerting.helpers import DAY, HOUR, MIN, cohort, fire, series, severity

HF = cohort("heart_failure")
COPD = cohort("copd")


def weights(*per_day: float | None) -> dict[str, object]:
    """Morning weights, the last one today 2 h before NOW (07:00 local if NOW is 13:00)."""
    n = len(per_day)
    rows = [((n - 1 - k) * DAY + 6 * HOUR, w) for k, w in enumerate(per_day) if w is not None]
    return {WEIGHT: series(rows)}


def test_hf1_gain_over_three_days() -> None:
    assert severity("HF1", weights(80.0, 80.5, 81.2, 82.1), HF) == "medium"
    assert severity("HF1", weights(80.0, 80.5, 81.2, 82.0), HF) is None  # exactly 2.0 is not > 2.0
    # the gain counts from the lowest of the last three mornings, with a day missing
    assert severity("HF1", weights(79.0, None, None, 80.0, 81.5), HF) is None  # 4 days back does not count
    assert severity("HF1", weights(None, 79.5, None, 81.75), HF) == "medium"


def test_hf1_override_and_only_morning_weight() -> None:
    c = cohort("heart_failure", thresholds={"HF1": {"gain_kg": 1.0}})
    f = fire("HF1", weights(80.0, 80.5, 81.2), c)
    assert f is not None
    assert f.evidence["thresholds"]["gain_kg"]["source"] == "care_plan"
    # the evidence shows the mornings the gain was measured against
    assert [r["value"] for r in f.evidence["readings"]] == [80.0, 80.5, 81.2]
    # a heavier evening weight (after clothes and dinner) is not the morning weight
    d = weights(80.0, 80.0, 80.0)
    evening = series([(2 * DAY + 6 * HOUR, 80.0), (DAY + 6 * HOUR, 80.0), (6 * HOUR, 80.0), (HOUR, 83.0)])
    assert severity("HF1", d, HF) is None
    assert severity("HF1", {WEIGHT: evening}, HF) is None


def test_hf2_daily_gain_low_then_medium() -> None:
    assert severity("HF2", weights(80.0, 81.5), HF) == "low"
    assert severity("HF2", weights(80.0, 81.4), HF) is None
    assert severity("HF2", weights(80.0, 81.5, 81.6), HF) == "medium"


def test_hf3_needs_dry_weight() -> None:
    d = weights(82.5, 82.5, 82.5, 82.0)
    assert severity("HF3", d, cohort("heart_failure", dry_weight_kg=80.0)) == "medium"
    assert severity("HF3", d, HF) is None
    assert severity("HF3", weights(82.0, 82.0, 82.0), cohort("heart_failure", dry_weight_kg=80.0)) is None


def test_hf4_baseline_insufficient_then_trend() -> None:
    # Only 5 baseline days: insufficient, absolute rules only.
    few = [80.0] * 5 + [None] * 16 + [80.0, 80.4, 80.9, 81.3, 81.6, 81.9, 82.0, 82.1]
    assert severity("HF4", weights(*few), HF) is None
    stable = [80.0 + (0.2 if k % 2 else -0.2) for k in range(21)]
    rising = [80.3, 80.8, 81.2, 81.5, 81.9, 82.2, 82.4, 82.6]
    assert severity("HF4", weights(*stable, *rising), HF) == "medium"
    assert severity("HF4", weights(*stable, *[80.1, 79.9, 80.0, 80.2, 79.8, 80.0, 80.1, 80.0]), HF) is None


def test_hf4_arms_only_on_enough_stable_baseline() -> None:
    rising = [80.3, 80.8, 81.2, 81.5, 81.9, 82.2, 82.4, 82.6]
    # Ten weighed baseline days (enough before, for 7): not armed yet.
    ten = [None] * 11 + [80.0 + (0.2 if k % 2 else -0.2) for k in range(10)]
    assert severity("HF4", weights(*ten, *rising), HF) is None
    fourteen = [None] * 7 + [80.0 + (0.2 if k % 2 else -0.2) for k in range(14)]
    assert severity("HF4", weights(*fourteen, *rising), HF) == "medium"
    # A baseline spread over ±3 kg (σ ≈ 3 kg: a shared scale, or no stable period) is no baseline.
    unsteady = [80.0 + d for d in (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0) * 3]
    assert severity("HF4", weights(*unsteady, 80.0, 84.0, 85.0, 85.5, 86.0, 86.0, 86.5, 87.0), HF) is None


def test_hf5_low_systolic_mean_of_duplicate() -> None:
    assert severity("HF5", {SYSTOLIC: series([(HOUR + 2 * MIN, 88.0), (HOUR, 90.0)])}, HF) == "high"
    assert severity("HF5", {SYSTOLIC: series([(HOUR + 2 * MIN, 88.0), (HOUR, 92.0)])}, HF) is None  # mean 90
    with_symptom = {SYSTOLIC: series([(HOUR, 95.0)]), SYMPTOM_HF[0]: series([(2 * HOUR, 1.0)])}
    assert severity("HF5", with_symptom, HF) == "medium"
    assert severity("HF5", {SYSTOLIC: series([(HOUR, 95.0)])}, HF) is None


def test_hf6_pulse() -> None:
    assert severity("HF6", {BP_PULSE: series([(HOUR, 101.0)])}, HF) == "medium"
    assert severity("HF6", {BP_PULSE: series([(HOUR, 100.0)])}, HF) is None
    assert severity("HF6", {OXIMETER_PULSE: series([(HOUR, 40.0)])}, HF) == "high"
    assert severity("HF6", {BP_PULSE: series([(HOUR, 131.0)])}, HF) == "high"
    base = [(k * DAY + 6 * HOUR, 70.0) for k in range(2, 9)]
    rise = [(DAY + 6 * HOUR, 80.0), (6 * HOUR, 80.0)]
    assert severity("HF6", {BP_PULSE: series(base + rise)}, HF) == "low"
    assert severity("HF6", {BP_PULSE: series([*base, (DAY + 6 * HOUR, 79.0), (6 * HOUR, 80.0)])}, HF) is None


def test_hf7_confirmed_spo2() -> None:
    assert severity("HF7", {SPO2: series([(HOUR + 5 * MIN, 90.0), (HOUR, 91.0)])}, HF) == "high"
    assert severity("HF7", {SPO2: series([(HOUR, 89.0)])}, HF) is None  # not confirmed
    assert severity("HF7", {SPO2: series([(HOUR + 5 * MIN, 89.0), (HOUR, 92.0)])}, HF) is None  # repeat was fine
    assert severity("HF7", {SPO2: series([(HOUR + 20 * MIN, 89.0), (HOUR, 90.0)])}, HF) is None  # too far apart


def test_hf9_missing_weight_days() -> None:
    assert severity("HF9", weights(80.0, None, None), HF) == "info"
    assert severity("HF9", weights(80.0, None, None, None), HF) == "low"
    assert severity("HF9", weights(80.0, None), HF) is None
    assert severity("HF9", weights(80.0, None, None, 80.0), HF) is None  # weighed today


def test_hf8_symptoms_and_weight_gain() -> None:
    sym = {SYMPTOM_HF[2]: series([(2 * HOUR, 1.0)])}
    assert severity("HF8", sym, HF) == "medium"
    assert severity("HF8", {SYMPTOM_HF[2]: series([(2 * HOUR, 0.0)])}, HF) is None
    both = {**sym, **weights(80.0, 80.5, 81.2, 82.1)}
    assert severity("HF8", both, HF) == "high"


def test_c1_levels_and_hypercapnic_target() -> None:
    def pair(a: float, b: float) -> dict[str, object]:
        return {SPO2: series([(HOUR + 3 * MIN, a), (HOUR, b)])}

    assert severity("C1", pair(91.0, 91.0), COPD) == "medium"
    assert severity("C1", pair(92.0, 91.0), COPD) is None  # confirmed level is the better: 92
    assert severity("C1", pair(87.0, 87.0), COPD) == "high"
    assert severity("C1", pair(84.0, 83.0), COPD) == "critical"
    hyper = cohort("copd", hypercapnic=True)
    assert severity("C1", pair(89.0, 89.0), hyper) is None
    assert severity("C1", pair(87.0, 87.0), hyper) == "high"


def test_c2_drop_vs_week() -> None:
    base = [(k * DAY + 6 * HOUR, 95.0) for k in range(1, 8)]
    assert severity("C2", {SPO2: series([*base, (HOUR, 91.0)])}, COPD) == "medium"
    assert severity("C2", {SPO2: series([*base, (HOUR, 92.0)])}, COPD) is None
    assert severity("C2", {SPO2: series([*base[:3], (HOUR, 80.0)])}, COPD) is None  # baseline insufficient


def test_c4_pulse() -> None:
    assert severity("C4", {OXIMETER_PULSE: series([(HOUR, 95.0)])}, COPD) == "low"
    assert severity("C4", {OXIMETER_PULSE: series([(HOUR, 94.0)])}, COPD) is None
    base = [(k * DAY + 6 * HOUR, 70.0) for k in range(1, 8)]
    assert severity("C4", {BP_PULSE: series([*base, (HOUR, 80.0)])}, COPD) == "low"


def test_c5_fev1_below_personal_range() -> None:

    stable = [(k * DAY + 6 * HOUR, 1.5 + (0.05 if k % 2 else -0.05)) for k in range(8, 28)]
    low_week = [(k * DAY + 6 * HOUR, 1.3) for k in range(0, 7)]
    assert severity("C5", {FEV1: series(stable + low_week)}, COPD) == "medium"
    ok_week = [(k * DAY + 6 * HOUR, 1.5) for k in range(0, 7)]
    assert severity("C5", {FEV1: series(stable + ok_week)}, COPD) is None


def test_c6_cat_rise() -> None:
    base = [(k * DAY, 12.0) for k in (10, 17, 24)]
    assert severity("C6", {CAT: series([*base, (DAY, 16.0)])}, COPD) == "medium"
    assert severity("C6", {CAT: series([*base, (DAY, 14.0)])}, COPD) == "info"
    assert severity("C6", {CAT: series([*base, (DAY, 13.0)])}, COPD) is None


def test_c7_two_symptoms_two_days() -> None:
    two_days = {k: series([(DAY + HOUR, 1.0), (HOUR, 1.0)]) for k in SYMPTOM_COPD[:2]}
    assert severity("C7", two_days, COPD) == "medium"
    one_day = {k: series([(HOUR, 1.0)]) for k in SYMPTOM_COPD[:2]}
    assert severity("C7", one_day, COPD) is None
    one_item = {SYMPTOM_COPD[0]: series([(DAY + HOUR, 1.0), (HOUR, 1.0)])}
    assert severity("C7", one_item, COPD) is None


def test_c3_combined_z_score() -> None:
    base_s = [(k * DAY + 6 * HOUR, 94.0 + (1.0 if k % 2 else -1.0)) for k in range(8, 28)]
    base_p = [(k * DAY + 6 * HOUR, 75.0 + (4.0 if k % 2 else -4.0)) for k in range(8, 28)]
    # σ(SpO2) = 1.4826, σ(pulse) = 5.93: a 2-point fall (z 1.35) and 5 bpm rise (z 0.84) → 1.10
    d = {SPO2: series([*base_s, (HOUR, 92.0)]), OXIMETER_PULSE: series([*base_p, (HOUR, 80.0)])}
    f = fire("C3", d, COPD)
    assert f is not None
    assert f.severity == "medium"
    small = {SPO2: series([*base_s, (HOUR, 93.0)]), OXIMETER_PULSE: series([*base_p, (HOUR, 78.0)])}
    assert severity("C3", small, COPD) is None
    few = {SPO2: series([*base_s[:5], (HOUR, 85.0)]), OXIMETER_PULSE: series([*base_p[:5], (HOUR, 110.0)])}
    assert severity("C3", few, COPD) is None  # < 7 baseline days: insufficient
