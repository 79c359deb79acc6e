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


def test_take_unevaluated_leaves_out_patients_notified_since_the_mark() -> None:
    claims = PatientClaims()
    assert claims.take_free(["busy"], limit=1) == ["busy"]  # a notify batch under way at the mark
    mark = claims.mark()
    assert claims.take_free(["new"], limit=1) == ["new"]  # notified while the sweep loads
    claims.release(["new"])
    # Neither is written by the sweep (their decisions come from newer readings), and the
    # sweep waits for neither; the rest are claimed.
    assert claims.take_unevaluated(["a", "busy", "new", "b"], mark) == ["a", "b"]
    assert claims.take_free(["a", "new"], limit=5) == ["new"]
    claims.release(["a", "b", "busy", "new"])
    assert claims.held() == 0
    # A later mark no longer leaves them out.
    assert claims.take_unevaluated(["busy", "new"], claims.mark()) == ["busy", "new"]


def test_take_unevaluated_waits_out_exclusive_and_gives_up_when_stopping() -> None:
    claims = PatientClaims()
    mark = claims.mark()
    got: list[list[str] | None] = []
    with claims.exclusive():
        th = threading.Thread(target=lambda: got.append(claims.take_unevaluated(["a"], mark)))
        th.start()
        time.sleep(0.1)
        assert got == []
    th.join(timeout=5)
    assert got == [["a"]]
    claims.release(["a"])
    stop = threading.Event()
    stop.set()
    with claims.exclusive():
        assert claims.take_unevaluated(["b"], mark, stop) is None
    assert claims.take_free(["b"], limit=1) == ["b"]  # the reservation went with it
