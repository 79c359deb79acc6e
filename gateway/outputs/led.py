"""An LED (and optionally a buzzer) on Linux GPIO through the ``gpiod`` binding (libgpiod v2).

Optional: ``pip install gpiod`` (extra ``gateway-gpio``). Without the binding or the chip the
output is unavailable (the hub logs that once and counts it); nothing else changes.
"""

from __future__ import annotations

import importlib
import logging
import time
from pathlib import Path
from typing import Any

from device_profiles.messages import FeedbackMessage
from gateway.outputs import OutputUnavailableError

logger = logging.getLogger(__name__)

# Levels that also sound the buzzer: the patient must act now.
URGENT_LEVELS = frozenset({"contact_care", "call_1177_or_112"})


class LedOutput:
    name = "led"

    def __init__(self, chip: str = "/dev/gpiochip0", led_line: int = 17, buzzer_line: int | None = None) -> None:
        self.chip = chip
        self.led_line = led_line
        self.buzzer_line = buzzer_line
        self._request: Any = None
        self._gpiod: Any = None

    def _lines(self) -> Any:
        if self._request is not None:
            return self._request
        try:
            gpiod = importlib.import_module("gpiod")
        except ImportError as err:
            raise OutputUnavailableError("python gpiod binding not installed") from err
        if not Path(self.chip).exists() or not hasattr(gpiod, "request_lines"):
            raise OutputUnavailableError(f"no GPIO chip {self.chip} (or gpiod < 2)")
        lines = [self.led_line] + ([self.buzzer_line] if self.buzzer_line is not None else [])
        out = gpiod.LineSettings(direction=gpiod.line.Direction.OUTPUT, output_value=gpiod.line.Value.INACTIVE)
        self._request = gpiod.request_lines(self.chip, consumer="egenmon-gateway", config={tuple(lines): out})
        self._gpiod = gpiod
        return self._request

    def _set(self, line: int, on: bool) -> None:
        value = self._gpiod.line.Value.ACTIVE if on else self._gpiod.line.Value.INACTIVE
        self._lines().set_value(line, value)

    def show(self, msg: FeedbackMessage) -> None:
        self._lines()
        self._set(self.led_line, True)
        if self.buzzer_line is not None and msg.level in URGENT_LEVELS:
            for _ in range(3):
                self._set(self.buzzer_line, True)
                time.sleep(0.2)
                self._set(self.buzzer_line, False)
                time.sleep(0.2)

    def clear(self) -> None:
        self._lines()
        self._set(self.led_line, False)
