"""notified.load_notified_cohort reads the same cohort as load.load_cohort, by index."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import psycopg

from alerting.load import load_cohort
from alerting.notified import NOTIFIED_COHORT_SQL, load_notified_cohort


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
