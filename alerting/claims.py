"""Which patients an evaluation holds, so the sweep and the notify evaluator never evaluate one patient at once.

Two evaluations of the same patient in parallel could both insert its first finding or
alert (a unique-index error) or write decisions from different snapshots of its readings in
either order. With disjoint patients the two threads lock disjoint alert and finding rows
(``FOR UPDATE`` in the lifecycle), so they cannot deadlock on each other. Housekeeping
touches any patient's alerts, so it holds everyone (``exclusive``).

The sweep holds a chunk only while it writes, not while it loads and evaluates it (seconds
for a large chunk): it takes a ``mark`` before loading, and ``take_unevaluated`` then claims
the chunk's patients that the notify evaluator has not taken since. Those it did take were
evaluated from newer readings than the sweep loaded, so the sweep leaves them out instead of
writing older decisions over theirs. A notified patient therefore waits at most for one
batch of the sweep's writes, never for its load.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager


class PatientClaims:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._held: set[str] = set()
        # Patients a waiting ``take_all`` wants: ``take_free`` leaves them alone, so a steady
        # stream of notifications cannot starve the sweep.
        self._reserved: set[str] = set()
        self._exclusive = False
        # Each ``take_free`` claim (and each ``mark``) gets the next tick; ``_taken_at`` keeps
        # each patient's latest.
        self._tick = 0
        self._taken_at: dict[str, int] = {}

    def take_free(self, ids: Iterable[str], limit: int) -> list[str]:
        """Claim up to ``limit`` of ``ids`` that nobody holds (in the order given); never waits."""
        with self._cond:
            if self._exclusive:
                return []
            taken: list[str] = []
            for pid in ids:
                if len(taken) >= limit:
                    break
                if pid not in self._held and pid not in self._reserved:
                    taken.append(pid)
            self._held.update(taken)
            if taken:
                self._tick += 1
                for pid in taken:
                    self._taken_at[pid] = self._tick
            return taken

    def take_all(self, ids: Sequence[str], stop: threading.Event | None = None) -> bool:
        """Claim all of ``ids``, waiting for whoever holds some of them; False if ``stop`` was set meanwhile."""
        with self._cond:
            return self._claim(set(ids), stop)

    def mark(self) -> int:
        """Now, for ``take_unevaluated``: patients held now or claimed by ``take_free`` later count as newer.

        Held now: a notify batch under way may load its readings after the caller does.
        """
        with self._cond:
            self._tick += 1
            for pid in self._held:
                self._taken_at[pid] = self._tick
            return self._tick - 1

    def take_unevaluated(self, ids: Sequence[str], since: int, stop: threading.Event | None = None) -> list[str] | None:
        """Claim those of ``ids`` not evaluated since ``since`` (a ``mark``), leaving out the others.

        Waits, as ``take_all`` does, while ``exclusive`` is held. Returns the claimed
        patients in the order given; None if ``stop`` was set meanwhile.
        """
        with self._cond:
            wanted = [p for p in ids if self._taken_at.get(p, 0) <= since]
            return wanted if self._claim(set(wanted), stop) else None

    def _claim(self, wanted: set[str], stop: threading.Event | None) -> bool:
        # Called holding the lock (so nothing is claimed between choosing ``wanted`` and reserving it).
        self._reserved |= wanted
        try:
            while self._exclusive or not wanted.isdisjoint(self._held):
                if stop is not None and stop.is_set():
                    return False
                self._cond.wait(timeout=0.5)
            self._held.update(wanted)
            return True
        finally:
            self._reserved -= wanted

    def release(self, ids: Iterable[str]) -> None:
        with self._cond:
            self._held.difference_update(ids)
            self._cond.notify_all()

    def wait_for_release(self, timeout: float) -> None:
        with self._cond:
            self._cond.wait(timeout=timeout)

    def held(self) -> int:
        with self._cond:
            return len(self._held)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold every patient: wait until no evaluation runs, and start none until done."""
        with self._cond:
            while self._exclusive or self._held:
                self._cond.wait(timeout=0.5)
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()
