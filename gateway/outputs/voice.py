"""Swedish speech: espeak-ng (voice ``sv``) to a WAV file, played with aplay when a sound card exists.

Fixed short sentences (the message text) in a synthetic voice: no network, no cloud TTS, and
it works on a Raspberry Pi without a desktop. Quiet hours (Europe/Stockholm) silence it;
the screen still shows the message.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from device_profiles.messages import FeedbackMessage
from gateway.outputs import OutputUnavailableError

logger = logging.getLogger(__name__)

STOCKHOLM = ZoneInfo("Europe/Stockholm")
ESPEAK_MAX_AMPLITUDE = 200  # espeak-ng -a: 0-200, 100 its default


def in_quiet_hours(now: datetime, spec: str, tz: tzinfo = STOCKHOLM) -> bool:
    """``spec`` "22-07": quiet from 22:00 to 06:59 local time (wrapping midnight); "" = never.

    The hour is read on the local wall clock, so it is right on both sides of a DST change.
    """
    if not spec:
        return False
    start, end = (int(x) for x in spec.split("-"))
    hour = now.astimezone(tz).hour
    if start == end:
        return False
    if start < end:
        return start <= hour < end
    return hour >= start or hour < end


def has_sound_card() -> bool:
    """An ALSA playback device exists (``/dev/snd/pcmC*D*p``)."""
    return any(Path("/dev/snd").glob("pcmC*D*p"))


class VoiceOutput:
    name = "voice"

    def __init__(
        self,
        *,
        voice: str = "sv",
        volume_pct: int = 80,
        quiet_hours: str = "22-07",
        wav_path: Path | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.voice = voice
        self.amplitude = round(ESPEAK_MAX_AMPLITUDE * volume_pct / 100)
        self.quiet_hours = quiet_hours
        self.wav_path = wav_path
        self.now = now
        self.spoken = 0  # messages actually synthesised (tests, logs)
        self.silenced = 0  # messages not spoken because of quiet hours or volume 0

    def show(self, msg: FeedbackMessage) -> None:
        if self.amplitude == 0 or in_quiet_hours(self.now(), self.quiet_hours):
            self.silenced += 1
            logger.info("voice_silenced id=%s quiet_hours=%s", msg.id, self.quiet_hours)
            return
        espeak = shutil.which("espeak-ng")
        if espeak is None:
            raise OutputUnavailableError("espeak-ng is not installed (apt-get install espeak-ng)")
        if self.wav_path is not None:
            self._synthesise(espeak, msg.message_sv, self.wav_path)
        else:
            aplay = shutil.which("aplay")
            if aplay is None or not has_sound_card():
                raise OutputUnavailableError("no sound device (aplay or /dev/snd) and no voice_wav_path")
            with tempfile.TemporaryDirectory(prefix="egenmon-voice-") as tmp:
                wav = Path(tmp) / "say.wav"
                self._synthesise(espeak, msg.message_sv, wav)
                subprocess.run([aplay, "-q", str(wav)], check=True, timeout=60, capture_output=True)
        self.spoken += 1
        logger.info("voice_spoken id=%s level=%s", msg.id, msg.level)

    def _synthesise(self, espeak: str, text: str, wav: Path) -> None:
        wav.parent.mkdir(parents=True, exist_ok=True)
        tmp = wav.with_name(wav.name + ".tmp")
        # The text is an argument, never a shell string; "--" ends the options.
        subprocess.run(
            [espeak, "-v", self.voice, "-a", str(self.amplitude), "-s", "150", "-w", str(tmp), "--", text],
            check=True,
            timeout=60,
            capture_output=True,
        )
        tmp.replace(wav)

    def clear(self) -> None:
        """Nothing to take back from speech."""
