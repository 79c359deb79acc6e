"""The sweep and the notify evaluator share patients: the sweep never waits for a notify batch
under way, and leaves its patients to it (their decisions come from newer readings)."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg

from alerting.service import AlertingService
from alerting.settings import AlertingSettings
from tests.alerting.dbdata import add_observation, make_patient


def _d4(db: psycopg.Connection[Any]) -> dict[str, str]:
    rows = db.execute("SELECT patient_id::text, severity FROM alert_finding WHERE rule_id = 'D4'").fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def test_the_sweep_leaves_out_patients_a_notify_batch_holds_and_writes_the_rest_in_batches(
    db: psycopg.Connection[Any], database_url: str
) -> None:
    pids = [make_patient(db, ["diabetes_t2"]) for _ in range(5)]
    for pid in pids:
        add_observation(db, pid, "glucose_capillary", "glucose", time.time() - 60, 2.5)
    held = pids[2]
    service = AlertingService(
        AlertingSettings(database_url=database_url, sweep_chunk=5, sweep_write_batch=2, metrics_port=0)
    )
    assert service.claims.take_free([held], limit=1) == [held]  # a notify batch under way
    # The sweep on a connection of its own, as in the service: the test polls on ``db``.
    sweep_conn = psycopg.connect(database_url, autocommit=True)
    sweep = threading.Thread(target=service.sweep, args=(sweep_conn,))
    sweep.start()
    try:
        # The chunk's writes do not wait for the held patient; everyone else gets D4 high.
        deadline = time.monotonic() + 60
        while len(_d4(db)) < 4:
            assert time.monotonic() < deadline, _d4(db)
            time.sleep(0.05)
        assert _d4(db) == {pid: "high" for pid in pids if pid != held}
        assert sweep.is_alive()  # housekeeping holds everyone: it waits for the batch to end
    finally:
        service.claims.release([held])
        sweep.join(timeout=60)
        sweep_conn.close()
    assert not sweep.is_alive()
    assert held not in _d4(db)  # left to the notify evaluation that held it
    assert service.claims.held() == 0
    # The next sweep (a new mark) covers the patient again.
    service.sweep(db)
    assert _d4(db) == dict.fromkeys(pids, "high")
