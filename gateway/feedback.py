"""What the gateway does with a message to the patient: the outputs behind one small interface.

The platform decides what the patient is told (``device_profiles.messages.FeedbackMessage``
on ``egenmon/v1/gw/{id}/feedback``); the gateway hands each message to its outputs. The
file output keeps the newest message on disk for a local display or voice service to
show; other outputs (speech, a kiosk page, an LED) implement the same ``show``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from device_profiles.messages import FeedbackMessage


class FeedbackSink(Protocol):
    def show(self, msg: FeedbackMessage) -> None:
        """Present the message to the patient; raise OSError when the output failed."""


class FileFeedbackSink:
    """The newest message as JSON (written atomically), for a display or speech service."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def show(self, msg: FeedbackMessage) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(msg.model_dump_json(by_alias=True, indent=2))
        tmp.replace(self.path)
