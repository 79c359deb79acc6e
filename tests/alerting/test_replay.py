"""Threshold replay (alerting/replay.py) against a real PostgreSQL: replay equals live, proposals change it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from alerting.replay import ReplayError, replay, run_alerts, steps
from alerting.service import evaluate_and_store
from tests.alerting.dbdata import add_observation, make_patient
from tests.alerting.helpers import HOUR, MIN, NOW

END = datetime.fromtimestamp(NOW, UTC)
ROOT = Path(__file__).resolve().parents[2]


def _history(db: psycopg.Connection[Any]) -> dict[str, str]:
    """Three patients over two days: a level 2 low, a BP crisis, and nothing."""
    low = make_patient(db, ["diabetes_t1"], thresholds={"routing": {"D2": "staff"}})  # every level 2 low to staff
    for k in range(12 * 24 * 2):  # CGM every 5 min, 5.5–7 mmol/L ...
        t = NOW - 48 * HOUR + k * 5 * MIN
        v = 6.2 + 0.8 * ((k % 24) / 24)
        if NOW - 30 * HOUR <= t < NOW - 29 * HOUR:
            v = 2.8  # ... with an hour at 2.8 (D2 below 3.0; not below 2.5)
        add_observation(db, low, "glucose_cgm", "glucose_interstitial", t, v)
    crisis = make_patient(db, ["hypertension"])
    for at, (s, d) in ((NOW - 40 * HOUR, (128, 80)), (NOW - 20 * HOUR, (188, 116)), (NOW - 8 * HOUR, (131, 82))):
        add_observation(db, crisis, "blood_pressure", "systolic", at, s, unit="mm[Hg]")
        add_observation(db, crisis, "blood_pressure", "diastolic", at, d, unit="mm[Hg]")
    quiet = make_patient(db, ["diabetes_t2"])
    add_observation(db, quiet, "glucose_capillary", "glucose", NOW - 10 * HOUR, 6.4)
    return {"low": low, "crisis": crisis, "quiet": quiet}


def _unit(db: psycopg.Connection[Any]) -> str:
    row = db.execute("SELECT id::text FROM care_unit WHERE code = 'u1'").fetchone()
    assert row is not None
    return str(row[0])


def _live(db: psycopg.Connection[Any], pids: list[str]) -> set[tuple[str, str, str, datetime]]:
    for t in steps(datetime.fromtimestamp(NOW - 47 * HOUR, UTC), END, 1.0):
        evaluate_and_store(db, pids, now=t, trigger="test")
    rows = db.execute(
        "SELECT patient_id::text, event_type, severity, opened_at FROM alert "
        "WHERE shown_to_staff_at IS NOT NULL AND event_type <> 'missing_data'"
    ).fetchall()
    return {tuple(r) for r in rows}  # type: ignore[misc]


def _counts(db: psycopg.Connection[Any]) -> tuple[Any, ...]:
    row = db.execute(
        "SELECT (SELECT count(*) FROM alert), (SELECT count(*) FROM alert_event), "
        "(SELECT count(*) FROM alert_finding), (SELECT count(*) FROM patient_message), "
        "(SELECT md5(string_agg(thresholds::text, ',' ORDER BY patient_id)) FROM care_plan_current)"
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_replay_equals_live_evaluation_on_the_same_data(db: psycopg.Connection[Any], database_url: str) -> None:
    pids = sorted(_history(db).values())
    live = _live(db, pids)
    assert {(e, s) for _, e, s, _ in live} == {("hypoglycaemia", "high"), ("bp_crisis", "high")}
    before = _counts(db)
    with psycopg.connect(database_url, autocommit=True) as conn:
        replayed = run_alerts(conn, pids, steps(datetime.fromtimestamp(NOW - 47 * HOUR, UTC), END, 1.0))
    assert {(a.patient, a.event_type, a.severity, a.opened_at) for a in replayed} == live
    assert _counts(db) == before  # the live tables and care plans are untouched


def test_a_proposal_shows_what_it_would_catch_and_miss(db: psycopg.Connection[Any], database_url: str) -> None:
    who = _history(db)
    _live(db, sorted(who.values()))
    unit = _unit(db)
    before = _counts(db)
    with psycopg.connect(database_url, autocommit=True) as conn:
        same = replay(conn, unit, days=2, proposal={}, now=END)
        lower = replay(conn, unit, days=2, proposal={"D2": {"threshold_mmol_l": 2.5}}, now=END)
        higher_bp = replay(conn, unit, days=2, proposal={"H3": {"systolic_mmhg": 190, "diastolic_mmhg": 120}}, now=END)
    assert _counts(db) == before
    doc = same.as_dict()
    assert doc["patients"] == 3
    assert doc["patient_months"] == pytest.approx(0.2)
    assert (doc["caught"], doc["missed"]) == (2, 0)  # the care plans in force reproduce the past
    assert {r["event_type"]: (r["current"], r["proposed"]) for r in doc["by_event_type"]} == {
        "hypoglycaemia": (1, 1),
        "bp_crisis": (1, 1),
    }
    low = lower.as_dict()
    assert {r["event_type"]: r["proposed"] for r in low["by_event_type"]} == {"hypoglycaemia": 0, "bp_crisis": 1}
    missed = [p for p in low["past"] if not p["caught"]]
    assert [p["event_type"] for p in missed] == ["hypoglycaemia"]  # a 2.8 low is no longer a staff alert
    high = higher_bp.as_dict()
    assert [p["event_type"] for p in high["past"] if not p["caught"]] == ["bp_crisis"]
    bp_row = next(r for r in high["by_event_type"] if r["event_type"] == "bp_crisis")
    assert bp_row["title"] == "Mycket högt blodtryck"


def test_replay_refuses_what_it_cannot_do(db: psycopg.Connection[Any], database_url: str) -> None:
    _history(db)
    with psycopg.connect(database_url, autocommit=True) as conn:
        with pytest.raises(ReplayError, match="days"):
            replay(conn, _unit(db), days=0, proposal={}, now=END)
        with pytest.raises(ReplayError, match="care unit"):
            replay(conn, "00000000-0000-0000-0000-000000000000", days=7, proposal={}, now=END)


def test_replay_command(db: psycopg.Connection[Any], database_url: str) -> None:
    who = _history(db)
    _live(db, sorted(who.values()))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": database_url}
    cmd = [sys.executable, "-m", "alerting", "replay", "--unit", "u1", "--days", "12", "--step-hours", "2"]
    out = subprocess.run(
        [*cmd, "--set", "D2.threshold_mmol_l=2,5", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["proposal"] == {"D2": {"threshold_mmol_l": 2.5}}
    assert [p["event_type"] for p in doc["past"] if not p["caught"]] == ["hypoglycaemia"]
    text = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    assert "past staff alerts: 2 caught, 0 missed" in text
    for bad, message in (
        ("D1.nope=3", "no parameter"),
        ("XX.a=1", "known rule"),
        ("D1.threshold_mmol_l=inf", "finite"),
    ):
        r = subprocess.run([*cmd, "--set", bad], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        assert r.returncode == 2
        assert message in r.stderr
