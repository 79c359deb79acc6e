"""Patient outputs: speech, a kiosk page and an LED/buzzer behind one small interface.

An ``Output`` shows the current message to the patient or clears it. The gateway builds the
configured ones (``EGENMON_GATEWAY_OUTPUTS="voice,screen,led"``; none by default) and
drives them through an ``OutputHub``: one worker thread with a queue, so a slow speech
synthesiser or a broken GPIO chip never holds up the BLE sessions or paho's network
thread, and every call is isolated (an exception is logged and counted per output).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Protocol

from device_profiles.messages import FeedbackMessage

logger = logging.getLogger(__name__)


class OutputUnavailableError(OSError):
    """The output cannot work on this box (no espeak-ng, no sound card, no GPIO chip)."""


class Output(Protocol):
    name: str

    def show(self, msg: FeedbackMessage) -> None:
        """Present the message (it replaces whatever was shown)."""

    def clear(self) -> None:
        """Nothing is current any more (the reading the reminder asked for arrived)."""


class OutputHub:
    """Runs every output call on one worker thread; failures are counted, never raised."""

    def __init__(self, outputs: list[Output], on_failure: Callable[[str], None] | None = None) -> None:
        self.outputs = outputs
        self.failures: dict[str, int] = {o.name: 0 for o in outputs}
        self._on_failure = on_failure
        self._queue: queue.Queue[tuple[str, FeedbackMessage | None] | None] = queue.Queue(maxsize=256)
        self._unavailable_logged: set[str] = set()
        self._marks: list[threading.Event] = []
        self._thread = threading.Thread(target=self._work, name="patient-outputs", daemon=True)
        self._thread.start()

    def show(self, msg: FeedbackMessage) -> None:
        self._put(("show", msg))

    def clear(self) -> None:
        self._put(("clear", None))

    def _put(self, item: tuple[str, FeedbackMessage | None]) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            # Outputs stuck for minutes: dropping a message beats blocking a BLE session.
            logger.error("patient_outputs_queue_full dropped=%s", item[0])

    def drain(self, timeout_s: float = 10.0) -> bool:
        """Wait until every queued call has run (tests, clean stop)."""
        done = threading.Event()
        self._marks.append(done)
        self._queue.put(("__mark__", None))
        return done.wait(timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout_s)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            op, msg = item
            if op == "__mark__":
                self._marks.pop(0).set()
                continue
            for out in self.outputs:
                self._call(out, op, msg)

    def _call(self, out: Output, op: str, msg: FeedbackMessage | None) -> None:
        try:
            if op == "show" and msg is not None:
                out.show(msg)
            else:
                out.clear()
        except Exception as err:
            self.failures[out.name] = self.failures.get(out.name, 0) + 1
            if self._on_failure is not None:
                self._on_failure(out.name)
            if isinstance(err, OutputUnavailableError):
                # Expected on a box without the hardware: say so once, then only count.
                if out.name not in self._unavailable_logged:
                    self._unavailable_logged.add(out.name)
                    logger.warning("patient_output_unavailable output=%s reason=%s", out.name, err)
            else:
                logger.exception("patient_output_failed output=%s op=%s", out.name, op)
