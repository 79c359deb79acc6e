"""Threshold replay requests from the clinic pages: claim one, run it, store the outcome.

clinic_api queues rows in ``replay_request`` (migration 0003); the alerting service's replay
thread calls ``process_one`` until none is left, then waits ``replay_poll_s``. A request is
claimed with ``FOR UPDATE SKIP LOCKED``, so two alerting processes never run the same one,
and ends ``done`` with ``ReplayResult.as_dict()`` or ``failed`` with a short error text.
A failing request is logged and counted, never fatal.

The replay runs on a connection of its own (it discards its prepared statements) and with
the alerting metrics muted on this thread: its alerts live in shadow tables, not the queue.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from alerting import metrics
from alerting.replay import ReplayError, replay
from alerting.rules import REGISTRY
from device_profiles.vocabulary import Condition

log = logging.getLogger(__name__)

ERROR_MAX_CHARS = 500
# A request still 'running' this long after it was claimed lost its process (stopped or
# killed mid-replay); it is failed so the page does not wait for it forever.
STALE_AFTER = timedelta(hours=6)

_CLAIM = """
UPDATE replay_request SET status = 'running', started_at = now()
WHERE id = (SELECT id FROM replay_request WHERE status = 'queued'
            ORDER BY requested_at, id FOR UPDATE SKIP LOCKED LIMIT 1)
RETURNING id, unit_id::text, days, condition, proposal, requested_at
"""
_STALE = """
UPDATE replay_request SET status = 'failed', finished_at = now(),
       error = 'abandoned: the alerting service stopped while running it'
WHERE status = 'running' AND started_at < now() - %s
RETURNING id
"""
# Only a request still ours: a stale one failed meanwhile keeps its 'failed'.
_FINISH = """
UPDATE replay_request SET status = %s, finished_at = now(), result = %s, error = %s
WHERE id = %s AND status = 'running'
"""


def validate_proposal(doc: object) -> dict[str, dict[str, float]]:
    """Rule id → {parameter: finite number}, every rule and parameter known to the registry
    (the checks of ``python -m alerting replay --set``); ``ReplayError`` otherwise."""
    if not isinstance(doc, Mapping):
        raise ReplayError("the proposal must be an object of rule id -> {parameter: number}")
    out: dict[str, dict[str, float]] = {}
    for rule_id, params in doc.items():
        if rule_id not in REGISTRY:
            raise ReplayError(f"unknown rule id {rule_id!r}")
        if not isinstance(params, Mapping) or not params:
            raise ReplayError(f"{rule_id}: expected an object of parameter -> number")
        for name, value in params.items():
            if name not in REGISTRY[rule_id].params:
                raise ReplayError(f"{rule_id} has no parameter {name!r}")
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ReplayError(f"{rule_id}.{name}: the value must be a finite number")
            out.setdefault(rule_id, {})[name] = float(value)
    return out


def _condition(value: str | None) -> str | None:
    if value is not None and value not in {c.value for c in Condition}:
        raise ReplayError(f"unknown condition {value!r}")
    return value


def fail_stale(conn: psycopg.Connection[Any], older_than: timedelta = STALE_AFTER) -> int:
    """Fail requests left 'running' by a process that is gone; returns how many."""
    ids = conn.execute(_STALE, (older_than,)).fetchall()
    for (rid,) in ids:
        log.warning("replay request %d abandoned while running; marked failed", rid)
        metrics.REPLAYS.labels("failed").inc()
    return len(ids)


def process_one(
    db: str | psycopg.Connection[Any],
    replay_conn: psycopg.Connection[Any] | None = None,
    *,
    now: datetime | None = None,
    step_h: float = 1.0,
) -> bool:
    """Run the oldest queued request; False when none was queued.

    ``db`` is a database URL (both connections are opened for the call) or an autocommit
    connection for the queue, then with ``replay_conn`` as the replay's own connection.
    The replayed period ends at ``now``, by default when the request was made.
    """
    if isinstance(db, str):
        with (
            psycopg.connect(db, autocommit=True) as queue_conn,
            psycopg.connect(db, autocommit=True) as own_conn,
        ):
            return process_one(queue_conn, own_conn, now=now, step_h=step_h)
    if replay_conn is None or replay_conn is db:
        raise ValueError("the replay needs a connection of its own (it discards prepared statements)")
    fail_stale(db)
    row = db.execute(_CLAIM).fetchone()
    if row is None:
        return False
    rid, unit_id, days, condition, proposal, requested_at = row
    started = time.perf_counter()
    try:
        with metrics.muted():
            result = replay(
                replay_conn,
                unit_id,
                days=days,
                proposal=validate_proposal(proposal),
                condition=_condition(condition),
                now=now or requested_at,
                step_h=step_h,
            )
    except ReplayError as err:
        _fail(db, rid, str(err))
    except Exception as err:  # one bad request must not stop the service or the queue
        log.exception("replay request %d failed", rid)
        _fail(db, rid, f"internal error ({type(err).__name__}); see the alerting service log")
        if replay_conn.closed or replay_conn.broken:
            # Every further request would fail on it: let the worker reconnect instead.
            raise psycopg.OperationalError("the replay connection was lost") from err
    else:
        db.execute(_FINISH, ("done", Jsonb(result.as_dict()), None, rid))
        metrics.REPLAYS.labels("done").inc()
        log.info(
            "replay request %d done unit=%s days=%d patients=%d elapsed_s=%.1f",
            rid,
            unit_id,
            days,
            result.patients,
            time.perf_counter() - started,
        )
    metrics.REPLAY_SECONDS.observe(time.perf_counter() - started)
    return True


def _fail(conn: psycopg.Connection[Any], rid: int, error: str) -> None:
    conn.execute(_FINISH, ("failed", None, error[:ERROR_MAX_CHARS], rid))
    metrics.REPLAYS.labels("failed").inc()
    log.warning("replay request %d failed: %s", rid, error)


class _QuietWhileMuted(logging.Filter):
    """The replay's own evaluations would log 'alert opened' lines for shadow alerts."""

    def filter(self, record: logging.LogRecord) -> bool:
        return metrics.live() or record.levelno > logging.INFO


for _name in ("alerting.service", "alerting.lifecycle"):
    logging.getLogger(_name).addFilter(_QuietWhileMuted())


def run_worker(database_url: str, stop_event: threading.Event, poll_s: float) -> None:
    """The service's replay thread: drain the queue, wait ``poll_s``, reconnect after errors."""
    while not stop_event.is_set():
        try:
            with (
                psycopg.connect(database_url, autocommit=True) as queue_conn,
                psycopg.connect(database_url, autocommit=True) as replay_conn,
            ):
                while not stop_event.is_set():
                    if not process_one(queue_conn, replay_conn):
                        stop_event.wait(poll_s)
        except psycopg.Error as err:
            metrics.ERRORS.labels("replay").inc()
            log.warning("replay worker: %s; reconnecting in %.0f s", err, poll_s)
            stop_event.wait(poll_s)
