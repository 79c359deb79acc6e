"""Replay requests (replay_request, migration 0003) run by alerting/replay_worker.py and the service."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client import REGISTRY as PROM

from alerting.replay import ReplayError, replay
from alerting.replay_worker import fail_stale, process_one, validate_proposal
from deploy.localstack import free_port
from tests.alerting.dbdata import make_patient
from tests.alerting.test_replay import END, _history, _live, _unit
from tests.alerting.test_service import _env

ROOT = Path(__file__).resolve().parents[2]


def _staff(db: psycopg.Connection[Any]) -> str:
    row = db.execute(
        "INSERT INTO staff (subject, display_name, roles) VALUES ('s-1', 'Sköterska', '{nurse}') RETURNING id::text"
    ).fetchone()
    assert row is not None
    return str(row[0])


def _request(
    db: psycopg.Connection[Any], unit: str, proposal: Any, *, days: int = 2, condition: str | None = None
) -> int:
    row = db.execute(
        "INSERT INTO replay_request (unit_id, requested_by, days, condition, proposal) "
        "VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (unit, _staff_id(db), days, condition, json.dumps(proposal)),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _staff_id(db: psycopg.Connection[Any]) -> str:
    row = db.execute("SELECT id::text FROM staff ORDER BY created_at LIMIT 1").fetchone()
    return str(row[0]) if row else _staff(db)


def _state(db: psycopg.Connection[Any], rid: int) -> tuple[Any, ...]:
    row = db.execute(
        "SELECT status, result, error, started_at IS NOT NULL, finished_at IS NOT NULL FROM replay_request "
        "WHERE id = %s",
        (rid,),
    ).fetchone()
    assert row is not None
    return tuple(row)


def _metric(name: str, **labels: str) -> float:
    return PROM.get_sample_value(name, labels) or 0.0


def test_the_table_refuses_what_the_worker_could_not_run(db: psycopg.Connection[Any]) -> None:
    make_patient(db, ["diabetes_t1"])
    unit = _unit(db)
    rid = _request(db, unit, {"D1": {"threshold_mmol_l": 3.5}})
    assert _state(db, rid) == ("queued", None, None, False, False)
    for days in (0, 91):
        with pytest.raises(psycopg.errors.CheckViolation):
            _request(db, unit, {}, days=days)
    with pytest.raises(psycopg.errors.CheckViolation):
        _request(db, unit, [1, 2])  # the proposal is an object
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("UPDATE replay_request SET status = 'done' WHERE id = %s", (rid,))  # done needs a result
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("UPDATE replay_request SET status = 'later' WHERE id = %s", (rid,))
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        _request(db, "00000000-0000-0000-0000-000000000000", {})
    indexes = {r[0] for r in db.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'replay_request'")}
    assert {"replay_request_queue_idx", "replay_request_unit_idx"} <= indexes


def test_a_request_is_run_and_equals_a_direct_replay(db: psycopg.Connection[Any], database_url: str) -> None:
    who = _history(db)
    _live(db, sorted(who.values()))
    unit = _unit(db)
    proposal = {"D2": {"threshold_mmol_l": 2.5}}
    rid = _request(db, unit, proposal)
    staff_alerts = _metric("egenmon_alerting_staff_alerts_total", event_type="hypoglycaemia")
    done = _metric("egenmon_alerting_replays_total", outcome="done")
    assert process_one(database_url, now=END) is True
    status, result, error, started, finished = _state(db, rid)
    assert (status, error, started, finished) == ("done", None, True, True)
    # The replay's shadow alerts are not counted as live staff alerts (a direct call below is).
    assert _metric("egenmon_alerting_staff_alerts_total", event_type="hypoglycaemia") == staff_alerts
    with psycopg.connect(database_url, autocommit=True) as conn:
        direct = replay(conn, unit, days=2, proposal=proposal, now=END).as_dict()
    assert result == json.loads(json.dumps(direct))
    assert (result["caught"], result["missed"]) == (1, 1)  # the 2.8 low is missed at 2.5
    assert [p["event_type"] for p in result["past"] if not p["caught"]] == ["hypoglycaemia"]
    assert _metric("egenmon_alerting_replays_total", outcome="done") == done + 1
    assert process_one(database_url, now=END) is False  # nothing left


def test_a_failing_request_does_not_stop_the_next(db: psycopg.Connection[Any], database_url: str) -> None:
    _history(db)
    unit = _unit(db)
    # Injected directly: the API would have refused most of these; the worker must too.
    bad = [
        _request(db, unit, {"D1": {"nope": 3}}),
        _request(db, unit, {"XX9": {"a": 1}}),
        _request(db, unit, {"D1": {"threshold_mmol_l": "3,5"}}),
        _request(db, unit, {"D1": {"threshold_mmol_l": True}}),
        _request(db, unit, {}, condition="gout"),
    ]
    good = _request(db, unit, {"D1": {"threshold_mmol_l": 3.5}})
    failed = _metric("egenmon_alerting_replays_total", outcome="failed")
    with (
        psycopg.connect(database_url, autocommit=True) as queue_conn,
        psycopg.connect(database_url, autocommit=True) as replay_conn,
    ):
        for _ in range(6):
            assert process_one(queue_conn, replay_conn, now=END) is True
        assert process_one(queue_conn, replay_conn, now=END) is False
    errors = [_state(db, rid)[:3] for rid in bad]
    assert [e[0] for e in errors] == ["failed"] * 5
    assert all(e[1] is None for e in errors)
    assert [e[2] for e in errors] == [
        "D1 has no parameter 'nope'",
        "unknown rule id 'XX9'",
        "D1.threshold_mmol_l: the value must be a finite number",
        "D1.threshold_mmol_l: the value must be a finite number",
        "unknown condition 'gout'",
    ]
    assert _state(db, good)[0] == "done"
    assert _metric("egenmon_alerting_replays_total", outcome="failed") == failed + 5


def test_one_connection_for_both_is_refused(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn, pytest.raises(ValueError, match="of its own"):
        process_one(conn, conn)


def test_validate_proposal() -> None:
    assert validate_proposal({"D1": {"threshold_mmol_l": 3}}) == {"D1": {"threshold_mmol_l": 3.0}}
    for bad in ([], {"D1": []}, {"D1": {}}, {"D1": {"threshold_mmol_l": float("nan")}}):
        with pytest.raises(ReplayError):
            validate_proposal(bad)


def test_a_request_abandoned_while_running_is_failed(db: psycopg.Connection[Any]) -> None:
    make_patient(db, ["diabetes_t1"])
    unit = _unit(db)
    old, recent = _request(db, unit, {}), _request(db, unit, {})
    claim = "UPDATE replay_request SET status = 'running', started_at = now() - %s WHERE id = %s"
    db.execute(claim, (timedelta(hours=7), old))
    db.execute(claim, (timedelta(hours=1), recent))
    assert fail_stale(db, timedelta(hours=6)) == 1
    assert _state(db, old)[0:3:2] == ("failed", "abandoned: the alerting service stopped while running it")
    assert _state(db, recent)[0] == "running"


@pytest.mark.slow
def test_the_service_runs_queued_requests(db: psycopg.Connection[Any], database_url: str, tmp_path: Path) -> None:
    make_patient(db, ["diabetes_t1"])
    unit = _unit(db)
    bad = _request(db, unit, {"D1": {"nope": 1}}, days=1)
    good = _request(db, unit, {"D1": {"threshold_mmol_l": 3.5}}, days=1)
    port = free_port()
    env = {**_env(database_url, port), "EGENMON_ALERTING_REPLAY_POLL_S": "0.2"}
    log = tmp_path / "alerting.log"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "alerting", "run"], cwd=ROOT, env=env, stderr=err)
    try:
        deadline = time.monotonic() + 30
        while _state(db, good)[0] != "done":
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert _state(db, bad)[0] == "failed"
        assert _state(db, good)[1]["patients"] == 1
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        assert 'egenmon_alerting_replays_total{outcome="done"} 1.0' in text
        assert 'egenmon_alerting_replays_total{outcome="failed"} 1.0' in text
        assert proc.poll() is None  # still running
    finally:
        proc.terminate()
        proc.wait(timeout=10)
