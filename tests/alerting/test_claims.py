"""The sweep and the notify evaluator never hold the same patient; notifications coalesce."""

from __future__ import annotations

import threading
import time

from alerting.claims import PatientClaims
from alerting.service import NotifyQueue


def test_take_free_skips_held_patients_and_caps_the_batch() -> None:
    claims = PatientClaims()
    assert claims.take_all(["a", "b"])
    assert claims.take_free(["a", "c", "d", "e"], limit=2) == ["c", "d"]
    claims.release(["a", "b"])
    assert claims.take_free(["a", "b", "c"], limit=10) == ["a", "b"]  # c is still held
    assert claims.held() == 4


def test_take_all_waits_for_the_holder_and_reserves_against_new_batches() -> None:
    claims = PatientClaims()
    assert claims.take_free(["p1"], limit=1) == ["p1"]
    got = threading.Event()

    def sweep() -> None:
        claims.take_all(["p1", "p2"])
        got.set()

    th = threading.Thread(target=sweep)
    th.start()
    time.sleep(0.2)
    assert not got.is_set()  # p1 is being evaluated by the notify side
    assert claims.take_free(["p2"], limit=1) == []  # reserved for the waiting sweep
    claims.release(["p1"])
    th.join(timeout=5)
    assert got.is_set()
    assert claims.take_free(["p1", "p2", "p3"], limit=5) == ["p3"]


def test_take_all_gives_up_when_stopping() -> None:
    claims = PatientClaims()
    claims.take_free(["x"], limit=1)
    stop = threading.Event()
    stop.set()
    assert claims.take_all(["x"], stop) is False
    assert claims.take_free(["x", "y"], limit=5) == ["y"]  # the reservation went with it


def test_exclusive_waits_for_evaluations_and_blocks_new_ones() -> None:
    claims = PatientClaims()
    claims.take_free(["a"], limit=1)
    entered = threading.Event()

    def housekeeping() -> None:
        with claims.exclusive():
            entered.set()
            time.sleep(0.2)

    th = threading.Thread(target=housekeeping)
    th.start()
    time.sleep(0.1)
    assert not entered.is_set()
    claims.release(["a"])
    assert entered.wait(5)
    assert claims.take_free(["b"], limit=1) == []
    th.join(timeout=5)
    assert claims.take_free(["b"], limit=1) == ["b"]


def test_notify_queue_coalesces_and_keeps_the_first_time() -> None:
    q = NotifyQueue()
    q.add(["b", "a"])
    first = q.wait(timeout=0)
    time.sleep(0.01)
    q.add(["a", "c"])
    assert len(q) == 3
    assert q.oldest_first() == ["a", "b", "c"]  # a and b share the first time; c came later
    assert q.pop(["c"]) > first  # c's own time
    assert q.pop(["a", "b"]) == first
    assert len(q) == 0
    assert q.wait(timeout=0.01) is None
