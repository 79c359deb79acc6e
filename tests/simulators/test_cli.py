"""The command line, run as the user would: `python -m simulators ...` as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from simulators.cohort import read_labels

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    result = subprocess.run(
        [sys.executable, "-m", "simulators", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_cohort_writes_labels(tmp_path: Path) -> None:
    out = run("cohort", "--patients", "12", "--seed", "4", "--days", "40", "--labels", str(tmp_path / "l.json"))
    labels = read_labels(tmp_path / "l.json")
    assert len(labels.conditions) == 12
    assert f"wrote {len(labels.episodes)} labelled episodes" in out.stdout
    assert labels.episodes


def test_seed_fleet_and_score_end_to_end(tmp_path: Path, database_url: str, mqtt_url: str) -> None:
    env = {"DATABASE_URL": database_url, "MQTT_URL": mqtt_url, "EGENMON_SIM_GATEWAY_PREFIX": f"c{uuid.uuid4().hex[:5]}"}
    start = (datetime.now(UTC) - timedelta(days=4)).replace(microsecond=0).isoformat()
    run("seed", "--patients", "6", "--seed", "3", "--days", "4", "--start", start, env=env)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM patient").fetchone() == (6,)
    labels = tmp_path / "labels.json"
    out = run(
        "fleet", "--patients", "6", "--seed", "3", "--backfill-days", "2", "--start", start,
        "--labels", str(labels), env=env,
    )  # fmt: skip
    assert "backfill: 6 gateways" in out.stdout
    # Put one alert on the first labelled episode, so the score has something to find.
    lab = read_labels(labels)
    ep = lab.episodes[0]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO alert (patient_id, rule_id, event_type, severity, title, opened_at, shown_to_staff_at)"
            " SELECT id, 'X1', 'X1', 'medium', 't', %s, %s FROM patient WHERE pseudonym = %s",
            (ep.start + (ep.end - ep.start) / 2, ep.start + (ep.end - ep.start) / 2, ep.patient),
        )
    scored = json.loads(run("score", "--labels", str(labels), "--json", env=env).stdout)
    row = next(
        r for r in scored if r["condition"] == ep.condition.value and r["episode_type"] == ep.type and r["rule"] == "X1"
    )
    assert row["detected"] == 1
    assert row["median_lead_h"] > 0
    table = run("score", "--labels", str(labels), env=env).stdout
    assert "sensitivity" in table


def test_missing_database_url_is_a_usage_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "EGENMON_DATABASE_URL"}}
    result = subprocess.run(
        [sys.executable, "-m", "simulators", "seed", "--patients", "2"],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "DATABASE_URL" in result.stderr
