"""Which patients an evaluation holds, so the sweep and the notify evaluator never evaluate one patient at once.

Two evaluations of the same patient in parallel could both insert its first finding or
alert (a unique-index error) or write decisions from different snapshots of its readings in
either order. With disjoint patients the two threads lock disjoint alert and finding rows
(``FOR UPDATE`` in the lifecycle), so they cannot deadlock on each other. Housekeeping
touches any patient's alerts, so it holds everyone (``exclusive``).
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
            return taken

    def take_all(self, ids: Sequence[str], stop: threading.Event | None = None) -> bool:
        """Claim all of ``ids``, waiting for whoever holds some of them; False if ``stop`` was set meanwhile."""
        wanted = set(ids)
        with self._cond:
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
