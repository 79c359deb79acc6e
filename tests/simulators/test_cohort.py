"""Cohorts: reproducible from the seed, valid identities, and seeded into a real database."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest

from device_profiles.vocabulary import Condition
from simulators.cohort import (
    CohortConfig,
    generate_cohort,
    luhn_check_digit,
    make_patient,
    read_labels,
    shift_to_recent_episode,
    skatteverket_test_pnr,
    write_labels,
)
from simulators.errors import SimulatorError
from simulators.physiology import Habits
from simulators.seed import seed_database


def _fingerprint(seed: int, n: int = 8) -> tuple[list[object], list[dict[str, str]]]:
    cohort = generate_cohort(CohortConfig(n, seed=seed, days=20))
    arrays: list[object] = []
    for p in cohort.patients:
        sim = cohort.series(p)
        for kind in sorted(sim.series):
            s = sim.series[kind]
            arrays.append(
                (p.pseudonym, p.personnummer, kind.value, s.t_s.tolist(), {k: v.tolist() for k, v in s.values.items()})
            )
    return arrays, [e.as_dict() for e in cohort.episodes()]


def test_same_seed_gives_identical_series_and_labels() -> None:
    assert _fingerprint(5) == _fingerprint(5)


def test_different_seed_gives_different_series() -> None:
    a, la = _fingerprint(5)
    b, lb = _fingerprint(6)
    assert a != b
    assert la != lb


def test_patient_does_not_depend_on_cohort_size() -> None:
    small = generate_cohort(CohortConfig(3, seed=9, days=10))
    large = generate_cohort(CohortConfig(40, seed=9, days=10))
    assert small.patients[2] == large.patients[2]
    s1, s2 = small.series(small.patients[2]), large.series(large.patients[2])
    for kind in s1.series:
        assert np.array_equal(s1.series[kind].t_s, s2.series[kind].t_s)


def test_cohort_covers_every_condition_and_unique_ids() -> None:
    cohort = generate_cohort(CohortConfig(60, seed=2))
    assert {p.condition for p in cohort.patients} == set(Condition)
    for attr in ("pseudonym", "personnummer", "gateway_id", "patient_id"):
        values = [getattr(p, attr) for p in cohort.patients]
        assert len(set(values)) == len(values), attr
    assert cohort.patients[0].gateway_id == "gw-0001"
    hf = next(p for p in cohort.patients if p.condition is Condition.HEART_FAILURE)
    assert hf.care_plan()["dry_weight_kg"] > 40
    assert hf.care_plan()["thresholds"] == {}
    asthma = next(p for p in cohort.patients if p.condition is Condition.ASTHMA)
    assert asthma.care_plan()["personal_best_pef"] >= 300


def skatteverket_test_pnr_are_in_the_test_range_with_a_valid_check_digit() -> None:
    # Skatteverket's documented example.
    assert skatteverket_test_pnr(date(1981, 12, 18), 987) == "19811218-9876"
    for i in range(50):
        pnr = make_patient(CohortConfig(50, seed=4), i).personnummer
        assert re.fullmatch(r"\d{8}-9[89]\d\d", pnr)
        digits = pnr[2:8] + pnr[9:12]
        assert int(pnr[-1]) == luhn_check_digit(digits)
    with pytest.raises(SimulatorError):
        skatteverket_test_pnr(date(1980, 1, 1), 123)


def test_labels_file_round_trips(tmp_path: Path) -> None:
    cohort = generate_cohort(CohortConfig(12, seed=3, days=40))
    n = write_labels(cohort, tmp_path / "labels.json")
    labels = read_labels(tmp_path / "labels.json")
    assert n == len(labels.episodes) > 0
    assert labels.episodes == cohort.episodes()
    assert set(labels.conditions) == {p.pseudonym for p in cohort.patients}
    with pytest.raises(SimulatorError):
        read_labels(tmp_path / "missing.json")


def test_seed_database_writes_rows_ingest_can_attribute(database_url: str) -> None:
    cohort = generate_cohort(CohortConfig(10, seed=8, days=5))
    result = seed_database(database_url, cohort)
    again = seed_database(database_url, cohort)  # idempotent
    assert result.patients == again.patients == 10
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM patient").fetchone() == (10,)
        assert conn.execute("SELECT count(*) FROM care_plan").fetchone() == (10,)
        assert conn.execute("SELECT count(*) FROM gateway_assignment").fetchone() == (10,)
        # The demo logins are the clinic's (clinic_api/demo_seed.py), not a second set here.
        assert conn.execute("SELECT count(*) FROM staff").fetchone() == (0,)
        p = cohort.patients[0]
        # The gateway maps to its patient at a time inside the simulated history.
        row = conn.execute(
            "SELECT patient_id FROM gateway_assignment WHERE gateway_id = %s AND valid @> %s::timestamptz",
            (p.gateway_id, cohort.config.start),
        ).fetchone()
        assert row == (p.patient_id,)
        plan = conn.execute(
            "SELECT conditions, thresholds, spo2_target FROM care_plan_current WHERE patient_id = %s",
            (p.patient_id,),
        ).fetchone()
        assert plan == ([p.condition.value], {}, "standard")
        pnr = conn.execute(
            "SELECT personnummer FROM patient_identity WHERE patient_id = %s", (p.patient_id,)
        ).fetchone()
        assert pnr == (p.personnummer,)
        n_dev = conn.execute("SELECT count(*) FROM device").fetchone()
        assert n_dev == (sum(len(q.devices) for q in cohort.patients),)


def test_shift_to_recent_episode_keeps_the_series_and_ends_an_episode_now() -> None:
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    config = CohortConfig(8, seed=1, start=now - timedelta(days=14), days=21, habits=Habits(episode_rate_scale=3))
    moved, episode = shift_to_recent_episode(config, now)
    assert episode is not None
    assert now - timedelta(days=1) < episode.end <= now
    shift = moved.start - config.start
    assert shift % timedelta(days=1) == timedelta(0)
    # Same episodes, moved by the same whole days.
    before = generate_cohort(config).episodes()
    after = generate_cohort(moved).episodes()
    assert [(e.patient, e.type, e.start + shift, e.end + shift) for e in before] == [
        (e.patient, e.type, e.start, e.end) for e in after
    ]
    assert episode in after
