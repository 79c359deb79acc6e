"""notified.load_notified_cohort reads the same cohort as load.load_cohort, by index."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import numpy as np
import psycopg

from alerting.load import load_cohort, load_dataset
from alerting.notified import NOTIFIED_COHORT_SQL, load_notified_cohort
from tests.alerting.dbdata import add_observation, make_patient


def _patient(db: psycopg.Connection[Any], pseudonym: str, *, active: bool = True) -> str:
    unit = db.execute(
        "INSERT INTO care_unit (code, name) VALUES ('u1', 'Enhet 1') "
        "ON CONFLICT (code) DO UPDATE SET name = excluded.name RETURNING id"
    ).fetchone()
    assert unit is not None
    row = db.execute(
        "INSERT INTO patient (pseudonym, display_name, birth_year, unit_id, active) "
        "VALUES (%s, 'Test', 1950, %s, %s) RETURNING id",
        (pseudonym, unit[0], active),
    ).fetchone()
    assert row is not None
    return str(row[0])


def _plan(db: psycopg.Connection[Any], pid: str, version: int, conditions: list[str], **kw: Any) -> None:
    db.execute(
        "INSERT INTO care_plan (patient_id, version, valid_from, conditions, thresholds, schedule, dry_weight_kg,"
        " spo2_target) VALUES (%s, %s, now() - %s * interval '1 day', %s, %s, %s, %s, %s)",
        (
            pid,
            version,
            30 - version,
            conditions,
            json.dumps(kw.get("thresholds", {})),
            json.dumps(kw.get("schedule", {})),
            kw.get("dry_weight_kg"),
            kw.get("spo2_target", "standard"),
        ),
    )


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def test_notified_cohort_equals_the_region_loaders(db: psycopg.Connection[Any]) -> None:
    a = _patient(db, "P-NOT-A")
    _plan(db, a, 1, ["diabetes_t2"], schedule={"glucose_capillary": 2})
    # A newer care plan wins; the first one still says when monitoring began.
    _plan(db, a, 2, ["diabetes_t2", "hypertension"], thresholds={"D4": {"high_below_mmol_l": 3.2}})
    b = _patient(db, "P-NOT-B")
    _plan(db, b, 1, ["heart_failure", "copd"], dry_weight_kg=80.0, spo2_target="hypercapnic")
    inactive = _patient(db, "P-NOT-C", active=False)
    _plan(db, inactive, 1, ["copd"])
    no_plan = _patient(db, "P-NOT-D")
    ids = [b, no_plan, a, inactive, a]  # unordered, with a repeat
    region = load_cohort(db, ids)
    notified = load_notified_cohort(db, ids)
    assert notified.patient_ids == sorted([a, b])
    for f in dataclasses.fields(region):
        assert _same(getattr(notified, f.name), getattr(region, f.name)), f.name
    assert notified.has("hypertension").tolist() == [a < b, a > b]


def test_notified_cohort_query_probes_the_care_plan_index(db: psycopg.Connection[Any]) -> None:
    plan = "\n".join(
        str(r[0])
        for r in db.execute(
            "EXPLAIN (COSTS OFF) " + NOTIFIED_COHORT_SQL, (["00000000-0000-0000-0000-000000000001"],)
        ).fetchall()
    )
    assert "care_plan_patient_id_version_key" in plan


def test_the_notify_paths_array_loader_gives_the_copy_loaders_dataset(db: psycopg.Connection[Any]) -> None:
    """The notify path loads readings with method="arrays": the same series as the sweep's binary COPY."""
    now = time.time()
    a = make_patient(db, ["diabetes_t1", "heart_failure"])
    b = make_patient(db, ["copd"])
    for k in range(6):
        add_observation(db, a, "glucose_cgm", "glucose_interstitial", now - k * 300, 5.0 - k * 0.5)
        add_observation(db, a, "glucose_capillary", "glucose", now - k * 7200, 2.5 + k)
        add_observation(db, b, "spo2", "spo2", now - k * 3600, 90.0 + k)
    add_observation(db, a, "glucose_cgm", "glucose_interstitial", now - 1800 - 1, None, censored="low")
    add_observation(db, b, "spo2", "spo2", now - 60, 50.0, status="rejected")
    add_observation(db, b, "weight", "weight", now - 20 * 86400, 80.0, unit="kg")
    add_observation(db, b, "spo2", "pulse_rate", now - 100, 71.0, unit="bpm")  # a component no rule reads
    cohort = load_notified_cohort(db, [a, b])
    copied = load_dataset(db, cohort, now, method="copy")
    arrays = load_dataset(db, cohort, now, method="arrays")
    assert copied.keys() == arrays.keys()
    assert {"glucose_cgm.glucose_interstitial", "glucose_capillary.glucose", "spo2.spo2"} <= copied.keys()
    for key, s in copied.items():
        assert s.pat.tolist() == arrays[key].pat.tolist(), key
        assert s.t.tolist() == arrays[key].t.tolist(), key
        assert s.v.tolist() == arrays[key].v.tolist(), key
    assert float("-inf") in copied["glucose_cgm.glucose_interstitial"].v.tolist()
    assert 50.0 not in copied["spo2.spo2"].v.tolist()
