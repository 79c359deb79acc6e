"""Episode grades (the consensus levels) and sensitivity by each grade's intended route (issue 12)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from device_profiles.vocabulary import Condition, Kind
from simulators.cohort import CohortConfig, generate_cohort, shift_to_recent_episode
from simulators.physiology import CGM_STEP_S, MODELS, Habits, glycaemic_grade, type1_low_grades
from simulators.scoring import StaffAlert, score_by_route, score_staff
from simulators.series import HOUR_S, MINUTE_S, ROUTE_OF_GRADE, Episode, EpisodeSpan

T0 = datetime(2026, 10, 1, tzinfo=UTC)
T0_S = int(T0.timestamp())
H = timedelta(hours=1)
D = timedelta(days=1)


def _grade(kind: str, level: float, minutes: int) -> str:
    t = T0_S + np.arange(0, 8 * HOUR_S, CGM_STEP_S, dtype=np.int64)
    g = np.full(t.size, 6.0)
    inside = (t >= T0_S + HOUR_S) & (t < T0_S + HOUR_S + minutes * MINUTE_S)
    g[inside] = level
    return glycaemic_grade(kind, t, g, T0_S, T0_S + 8 * HOUR_S)


def test_hypoglycaemia_grades_follow_the_consensus_levels() -> None:
    assert _grade("hypoglycaemia", 2.8, 15) == "level_2"  # < 3.0 for 15 min
    assert _grade("hypoglycaemia", 2.8, 10) == "level_1"  # < 3.0 too briefly: a level 1 low
    assert _grade("hypoglycaemia", 3.0, 60) == "level_1"  # exactly 3.0 is not below it
    assert _grade("hypoglycaemia", 3.4, 125) == "prolonged_low"  # > 120 min below 3.9
    assert _grade("hypoglycaemia", 3.4, 120) == "level_1"
    assert _grade("hyperglycaemia", 16.0, 120) == "prolonged_high"  # >= 2 h above 13.9
    assert _grade("hyperglycaemia", 16.0, 355) == "prolonged_high"
    assert _grade("hyperglycaemia", 16.0, 360) == "sustained_high"  # >= 6 h: the corrections failed
    assert _grade("hyperglycaemia", 16.0, 115) == "brief_high"
    assert _grade("decompensation", 0.0, 0) == ""


def test_grades_carry_their_intended_route() -> None:
    for g in ("level_1", "level_2_single", "brief_high", "prolonged_high"):
        assert ROUTE_OF_GRADE[g] == "patient"
    for g in ("", "level_2", "level_2_recurrent", "prolonged_low", "sustained_high"):
        assert ROUTE_OF_GRADE[g] == "staff"
    assert set(ROUTE_OF_GRADE) == {
        "",
        "level_1",
        "level_2",
        "level_2_single",
        "level_2_recurrent",
        "prolonged_low",
        "brief_high",
        "prolonged_high",
        "sustained_high",
    }
    with pytest.raises(ValueError, match="unknown episode grade"):
        EpisodeSpan("hypoglycaemia", Condition.DIABETES_T1, 0, 1, "level_3")
    ep = Episode("A", Condition.DIABETES_T1, "hypoglycaemia", T0, T0 + H, "level_1")
    assert ep.route == "patient"
    assert ep.label == "hypoglycaemia level_1 (patient)"
    assert Episode("A", Condition.HEART_FAILURE, "decompensation", T0, T0 + D).label == "decompensation"


def test_labels_round_trip_and_older_labels_are_for_staff() -> None:
    ep = Episode("A", Condition.DIABETES_T1, "hypoglycaemia", T0, T0 + H, "level_2")
    doc = ep.as_dict()
    assert doc["grade"] == "level_2"
    assert doc["route"] == "staff"
    assert Episode.from_dict(doc) == ep
    old = {k: v for k, v in doc.items() if k not in ("grade", "route")}
    assert Episode.from_dict(old).grade == ""
    assert Episode.from_dict(old).route == "staff"


def test_simulated_hypos_are_graded_by_their_true_nadir() -> None:
    grades: dict[str, int] = {}
    for seed in range(4):
        rng = np.random.default_rng(seed)
        model = MODELS[Condition.DIABETES_T1]
        params = model.draw_params(rng)
        sim = model.simulate(rng, params, T0_S, 30, Habits.perfect())
        cgm = sim.series[Kind.GLUCOSE_CGM]
        for ep in sim.episodes:
            grades[ep.grade] = grades.get(ep.grade, 0) + 1
            if ep.type != "hypoglycaemia":
                assert ep.grade in ("prolonged_high", "sustained_high")  # the model's highs last 4-8 h
                continue
            inside = (cgm.t_s >= ep.start_s) & (cgm.t_s <= ep.end_s)
            lowest = float(np.min(cgm.values["glucose_interstitial"][inside]))
            if ep.grade == "level_1":
                assert lowest > 2.5  # the sensor (noise 0.25) may dip below 3.0, the true glucose did not
            elif ep.grade != "prolonged_low":
                assert ep.grade in ("level_2_single", "level_2_recurrent")  # type 1: who acts
                assert lowest < 3.2
    # Type 1 nadirs span 2.4-3.4 mmol/L: both levels occur.
    assert grades.get("level_1", 0) > 0
    assert grades.get("level_2_single", 0) + grades.get("level_2_recurrent", 0) > 0


def _low(start_s: int, nadir: float, minutes: int) -> tuple[EpisodeSpan, np.ndarray, np.ndarray]:
    t = start_s + np.arange(0, 3 * HOUR_S, CGM_STEP_S, dtype=np.int64)
    g = np.where((t >= start_s + 30 * MINUTE_S) & (t < start_s + (30 + minutes) * MINUTE_S), nadir, 6.0)
    return EpisodeSpan("hypoglycaemia", Condition.DIABETES_T1, start_s, start_s + 3 * HOUR_S, "level_2"), t, g


def test_type_1_level_2_lows_are_the_patients_until_the_third_in_a_week() -> None:
    days = [0, 2, 5, 13]
    parts = [_low(T0_S + d * 86_400, 2.7, 40) for d in days]
    spans = [p[0] for p in parts]
    t = np.concatenate([p[1] for p in parts])
    g = np.concatenate([p[2] for p in parts])
    hyper = EpisodeSpan("hyperglycaemia", Condition.DIABETES_T1, T0_S + 1, T0_S + 2, "brief_high")
    regraded = type1_low_grades([spans[2], hyper, spans[0], spans[1], spans[3]], t, g)
    # Order kept; the 3rd within 7 days is recurrent; 13 days is alone again (day 5 + 7 < 13).
    assert [sp.grade for sp in regraded] == [
        "level_2_recurrent",
        "brief_high",
        "level_2_single",
        "level_2_single",
        "level_2_single",
    ]
    long_low, t2, g2 = _low(T0_S, 3.4, 10)
    g2 = np.where((t2 >= T0_S + 20 * MINUTE_S) & (t2 < T0_S + 150 * MINUTE_S), 2.9, g2)  # 130 min < 3.9
    assert type1_low_grades([long_low], t2, g2)[0].grade == "prolonged_low"


def test_cohort_episodes_keep_their_grade_when_shifted() -> None:
    config = CohortConfig(30, seed=2, days=30)
    graded = [e for e in generate_cohort(config).episodes() if e.grade]
    assert graded
    assert all(e.condition in (Condition.DIABETES_T1, Condition.DIABETES_T2) for e in graded)
    _, ep = shift_to_recent_episode(config, T0 + 60 * D, ("hypoglycaemia",))
    assert ep is not None
    assert ep.grade in ("level_1", "level_2", "level_2_single", "level_2_recurrent", "prolonged_low")


def test_sensitivity_by_intended_route() -> None:
    level1 = Episode("A", Condition.DIABETES_T1, "hypoglycaemia", T0, T0 + H, "level_1")
    level2 = Episode("A", Condition.DIABETES_T1, "hypoglycaemia", T0 + D, T0 + D + H, "level_2")
    hf = Episode("B", Condition.HEART_FAILURE, "decompensation", T0 + 10 * D, T0 + 16 * D)
    staff = [StaffAlert("A", "D1", T0 + 2 * D, T0 + 2 * D)]  # matches nothing: load only
    told = [
        StaffAlert("A", "D1", T0 + 10 * timedelta(minutes=1), T0 + 10 * timedelta(minutes=1), "patient"),
        StaffAlert("A", "D1", T0 + D + 5 * timedelta(minutes=1), T0 + D + 5 * timedelta(minutes=1), "patient"),
        StaffAlert("B", "HF1", T0 + 11 * D, T0 + 11 * D, "patient"),
    ]
    conditions: dict[str, tuple[Condition, ...]] = {"A": (Condition.DIABETES_T1,), "B": (Condition.HEART_FAILURE,)}
    t1, hfrow = score_by_route(staff, told, [level1, level2, hf], conditions, 30)
    # The level 1 low was the patient's to treat and they were told: detected. The level 2
    # low and the decompensation had to reach staff: a message to the patient is not enough.
    assert (t1.detected, t1.episodes) == (1, 2)
    assert (hfrow.detected, hfrow.episodes) == (0, 1)
    assert t1.median_delay_h == pytest.approx(10 / 60)
    # Staff load is the staff alerts only.
    (only_t1, _) = score_staff(staff, [level1, level2, hf], conditions, 30)
    assert t1.staff_per_pm == only_t1.staff_per_pm > 0
    assert only_t1.detected == 0


def test_per_grade_breakdown_by_label() -> None:
    eps = [
        Episode(
            "A", Condition.DIABETES_T1, "hypoglycaemia", T0 + k * D, T0 + k * D + H, "level_1" if k % 2 else "level_2"
        )
        for k in range(40)
    ]
    staff = [StaffAlert("A", "D2", T0 + k * D, T0 + k * D) for k in range(0, 40, 2)]  # every level 2
    told = [StaffAlert("A", "D1", T0 + k * D, T0 + k * D, "patient") for k in range(1, 40, 4)]  # half the level 1s
    conditions: dict[str, tuple[Condition, ...]] = {"A": (Condition.DIABETES_T1,)}
    (typed,) = score_by_route(staff, told, eps, conditions, 45)
    assert typed.sensitivity_by_type == {"hypoglycaemia": (30, 40)}  # each through its own route
    (row,) = score_by_route(staff, told, eps, conditions, 45, by_label=True)
    assert row.sensitivity_by_type == {
        "hypoglycaemia level_1 (patient)": (10, 20),
        "hypoglycaemia level_2 (staff)": (20, 20),
    }
    (only,) = score_staff(staff, eps, conditions, 45, by_label=True)
    assert only.sensitivity_by_type["hypoglycaemia level_1 (patient)"] == (0, 20)
    (by_type,) = score_staff(staff, eps, conditions, 45)
    assert by_type.sensitivity_by_type == {"hypoglycaemia": (20, 40)}
