"""The kiosk page: a local web page the gateway serves on 127.0.0.1 for a small screen.

Large type, black on white (21:1), Swedish: today's scheduled measurements (done or not),
the last value of each kind with a green/yellow/red mark against the care plan's display
thresholds when the config carries them, and the current message. Stdlib ``http.server``
only; the page refreshes itself, as a kiosk has no one to press reload.
"""

from __future__ import annotations

import html
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from device_profiles.messages import DisplayLimit, FeedbackMessage, display_level

logger = logging.getLogger(__name__)

STOCKHOLM = ZoneInfo("Europe/Stockholm")
Mark = Literal["green", "yellow", "red"]

KIND_SV: dict[str, str] = {
    "blood_pressure": "Blodtryck",
    "glucose_capillary": "Blodsocker",
    "glucose_cgm": "Blodsocker (sensor)",
    "weight": "Vikt",
    "body_composition": "Vikt och kroppssammansättning",
    "spo2": "Syremättnad",
    "temperature": "Temperatur",
    "spirometry": "Lungfunktion",
    "symptoms": "Hur du mår",
}
COMPONENT_SV: dict[str, str] = {
    "pulse": "puls",
    "weight": "vikt",
    "bmi": "BMI",
    "body_fat": "fett",
    "glucose": "blodsocker",
    "spo2": "syremättnad",
    "temperature": "temperatur",
    "pef": "PEF",
    "fev1": "FEV1",
    "fvc": "FVC",
}
UNIT_SV: dict[str, str] = {
    "mm[Hg]": "mmHg",
    "/min": "slag/min",
    "mmol/L": "mmol/l",
    "kg": "kg",
    "kg/m2": "kg/m²",
    "cm": "cm",
    "%": "%",
    "Cel": "°C",
    "L/min": "l/min",
    "L": "l",
    "{score}": "",
    "{count}": "",
}
MARK_SV: dict[Mark, str] = {"green": "Inom gränserna", "yellow": "Nära gränsen", "red": "Utanför gränserna"}
LEVEL_SV: dict[str, str] = {
    "receipt": "Kvitto",
    "measure_again": "Mät igen",
    "reminder": "Påminnelse",
    "contact_care": "Kontakta vården",
    "call_1177_or_112": "Ring 1177 eller 112",
}


@dataclass(frozen=True)
class LastValue:
    kind: str
    measured_at: datetime
    values: Mapping[str, tuple[float | None, str]]  # component -> (value, stored unit)


@dataclass(frozen=True)
class Slot:
    kind: str
    at: datetime  # UTC
    state: Literal["done", "due", "later"]


@dataclass(frozen=True)
class KioskData:
    now: datetime
    slots: Sequence[Slot] = ()
    last: Sequence[LastValue] = ()
    limits: Sequence[DisplayLimit] = ()


def sv_number(v: float) -> str:
    """Decimal comma; whole numbers without decimals (142, not 142,0)."""
    if float(v).is_integer():
        return str(int(v))
    return f"{v:.1f}".replace(".", ",")


def format_value(last: LastValue) -> str:
    vals = last.values
    if last.kind == "blood_pressure" and "systolic" in vals and "diastolic" in vals:
        sys_v, dia_v = vals["systolic"][0], vals["diastolic"][0]
        text = f"{sv_number(sys_v) if sys_v is not None else '–'}/{sv_number(dia_v) if dia_v is not None else '–'} mmHg"
        pulse = vals.get("pulse")
        if pulse is not None and pulse[0] is not None:
            text += f", puls {sv_number(pulse[0])}"
        return text
    parts = []
    for name, (v, unit) in vals.items():
        label = COMPONENT_SV.get(name, name) + " " if len(vals) > 1 else ""
        shown = sv_number(v) if v is not None else "–"
        parts.append(f"{label}{shown}\u00a0{UNIT_SV.get(unit, unit)}".rstrip())
    return ", ".join(parts)


def mark_of(last: LastValue, limits: Sequence[DisplayLimit]) -> Mark | None:
    """The worst mark over the components the config has limits for; None when none has.

    ``limits`` are the config's ``limits`` (device_profiles.messages.DisplayLimit), the
    patient's display limits as the platform publishes them (alerting/README.md).
    """
    worst: Mark | None = None
    rank = {"green": 0, "yellow": 1, "red": 2}
    for name, (v, _unit) in last.values.items():
        key = f"{last.kind}.{name}"
        if v is None or not any(lim.component == key for lim in limits):
            continue
        m: Mark = display_level(list(limits), key, float(v))
        if worst is None or rank[m] > rank[worst]:
            worst = m
    return worst


def limits_from_config(raw: object) -> list[DisplayLimit]:
    """The ``limits`` of a config.json document, tolerating its absence or junk entries."""
    if not isinstance(raw, dict) or not isinstance(raw.get("limits"), list):
        return []
    out = []
    for item in raw["limits"]:
        try:
            out.append(DisplayLimit.model_validate(item))
        except ValidationError:
            continue
    return out


STATE_SV = {"done": "Klar", "due": "Inte gjord ännu", "later": "Senare i dag"}

CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; padding: 1.5rem 2rem; background: #ffffff; color: #000000;
  font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; font-size: 2rem; line-height: 1.35; }
h1 { font-size: 2.6rem; margin: 0 0 1rem; }
h2 { font-size: 2.2rem; margin: 1.5rem 0 .5rem; }
.message { border: .5rem solid #000000; border-radius: 1rem; padding: 1rem 1.5rem; margin-bottom: 1.5rem;
  background: #ffffff; color: #000000; font-size: 2.6rem; font-weight: bold; }
.message.call_1177_or_112, .message.contact_care { border-color: #8a0000; }
.message .level { display: block; font-size: 1.6rem; font-weight: normal; }
ul { list-style: none; padding: 0; margin: 0; }
li { padding: .6rem 0; border-bottom: 2px solid #595959; }
.badge { display: inline-block; padding: .1rem .8rem; border-radius: .5rem; font-weight: bold; margin-left: .5rem; }
.done, .green { background: #d7f5df; color: #003d17; }
.due, .yellow { background: #fff1b8; color: #3d2e00; }
.red { background: #ffd9d9; color: #5c0000; }
.later { background: #e8e8e8; color: #000000; }
.when { color: #333333; font-size: 1.6rem; }
"""


def render_page(data: KioskData, current: FeedbackMessage | None, *, refresh_s: int = 10) -> str:
    now_local = data.now.astimezone(STOCKHOLM)
    esc = html.escape
    out = [
        "<!doctype html>",
        '<html lang="sv"><head><meta charset="utf-8">',
        f'<meta http-equiv="refresh" content="{refresh_s}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Egenmonitorering</title><style>{CSS}</style></head><body>",
        f'<h1>Egenmonitorering <span class="when">{now_local:%H:%M}</span></h1>',
    ]
    if current is not None:
        out.append(
            f'<section class="message {esc(current.level)}" role="status" aria-live="polite">'
            f'<span class="level">{esc(LEVEL_SV.get(current.level, ""))}</span>{esc(current.message_sv)}</section>'
        )
    out.append("<h2>Dagens mätningar</h2>")
    if data.slots:
        out.append('<ul class="today">')
        for s in data.slots:
            at = s.at.astimezone(STOCKHOLM)
            out.append(
                f"<li>Kl. {at:%H:%M} {esc(KIND_SV.get(s.kind, s.kind))}"
                f'<span class="badge {s.state}">{STATE_SV[s.state]}</span></li>'
            )
        out.append("</ul>")
    else:
        out.append("<p>Inga schemalagda mätningar i dag.</p>")
    out.append("<h2>Senaste värden</h2>")
    if data.last:
        out.append('<ul class="last">')
        for lv in data.last:
            mark = mark_of(lv, data.limits)
            badge = f'<span class="badge {mark}">{MARK_SV[mark]}</span>' if mark else ""
            at = lv.measured_at.astimezone(STOCKHOLM)
            day = "i dag" if at.date() == now_local.date() else f"{at.day}/{at.month}"
            out.append(
                f"<li>{esc(KIND_SV.get(lv.kind, lv.kind))}: <strong>{esc(format_value(lv))}</strong>{badge}"
                f' <span class="when">{day} kl. {at:%H:%M}</span></li>'
            )
        out.append("</ul>")
    else:
        out.append("<p>Inga mätningar ännu.</p>")
    out.append("</body></html>")
    return "\n".join(out)


def slot_states(
    slots_today: Mapping[str, Sequence[datetime]],
    readings: Mapping[str, Sequence[datetime]],
    now: datetime,
    *,
    early: timedelta,
) -> list[Slot]:
    """Each of today's slots is done by a reading from ``early`` before it up to ``early``
    before the kind's next slot (one reading counts for one slot)."""
    out: list[Slot] = []
    for kind, slots in slots_today.items():
        times = sorted(t.astimezone(UTC) for t in readings.get(kind, ()))
        for i, slot in enumerate(slots):
            end = slots[i + 1] - early if i + 1 < len(slots) else slot + timedelta(days=1)
            if any(slot - early <= t < end for t in times):
                state: Literal["done", "due", "later"] = "done"
            elif now >= slot:
                state = "due"
            else:
                state = "later"
            out.append(Slot(kind, slot, state))
    return sorted(out, key=lambda s: (s.at, s.kind))


class ScreenOutput:
    """Keeps the current message and serves the page on 127.0.0.1:``port``."""

    name = "screen"

    def __init__(self, data: Callable[[], KioskData], *, port: int = 8091, refresh_s: int = 10) -> None:
        self.data = data
        self.refresh_s = refresh_s
        self.current: FeedbackMessage | None = None
        self._lock = threading.Lock()
        screen = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] == "/":
                    body = screen.page().encode()
                    ctype = "text/html; charset=utf-8"
                elif self.path == "/current.json":
                    cur = screen.current
                    body = (cur.model_dump_json(by_alias=True) if cur else "null").encode()
                    ctype = "application/json"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        # Loopback only: the page is for the screen attached to this box.
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, name="kiosk-http", daemon=True)
        self._thread.start()
        logger.info("kiosk_page url=%s", self.url)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def page(self) -> str:
        with self._lock:
            current = self.current
        if current is not None and current.expires_at <= datetime.now(UTC):
            current = None
        return render_page(self.data(), current, refresh_s=self.refresh_s)

    def show(self, msg: FeedbackMessage) -> None:
        with self._lock:
            self.current = msg

    def clear(self) -> None:
        with self._lock:
            self.current = None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def load_json(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return None
