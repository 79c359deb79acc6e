"""Server-rendered SVG charts: one per measurement, thresholds drawn, alerts marked.

No JavaScript: the markup is built here and escaped by Jinja2's autoescape as text
(``Markup`` only wraps our own numbers and escaped labels).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

from clinic_api.downsample import Buckets

WIDTH, HEIGHT = 720, 220
PAD_L, PAD_R, PAD_T, PAD_B = 48, 12, 14, 26


@dataclass(frozen=True, slots=True)
class Threshold:
    value: float
    label: str
    danger: bool = False


@dataclass(frozen=True, slots=True)
class AlertMark:
    at: dt.datetime
    label: str
    severity: str


def render(
    title: str,
    unit: str,
    data: Buckets,
    *,
    start: dt.datetime,
    end: dt.datetime,
    thresholds: list[Threshold],
    alerts: list[AlertMark],
) -> Markup:
    t0, t1 = start.timestamp(), end.timestamp()
    values = list(data.min) + list(data.max) + [t.value for t in thresholds]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1
    span = hi - lo
    lo, hi = lo - 0.08 * span, hi + 0.08 * span
    plot_w, plot_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B

    def x(ts: float) -> float:
        return PAD_L + (ts - t0) / max(t1 - t0, 1.0) * plot_w

    def y(v: float) -> float:
        return PAD_T + (hi - v) / (hi - lo) * plot_h

    parts: list[str] = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}, {len(data.t_s)} punkter"'
        ' class="chart" preserveAspectRatio="none">',
        f"<title>{escape(title)} ({escape(unit)})</title>",
        f'<rect x="{PAD_L}" y="{PAD_T}" width="{plot_w}" height="{plot_h}" class="plot"/>',
    ]
    for frac in (0.0, 0.5, 1.0):
        v = lo + frac * (hi - lo)
        parts.append(f'<text x="{PAD_L - 4}" y="{y(v) + 4:.1f}" class="ax" text-anchor="end">{v:.1f}</text>')
    parts.append(f'<text x="{PAD_L}" y="{HEIGHT - 6}" class="ax">{start:%Y-%m-%d}</text>')
    parts.append(f'<text x="{WIDTH - PAD_R}" y="{HEIGHT - 6}" class="ax" text-anchor="end">{end:%Y-%m-%d}</text>')
    for th in thresholds:
        cls = "th danger" if th.danger else "th"
        parts.append(
            f'<line x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{y(th.value):.1f}" y2="{y(th.value):.1f}" class="{cls}"/>'
        )
        parts.append(
            f'<text x="{WIDTH - PAD_R - 2}" y="{y(th.value) - 3:.1f}" class="thl" text-anchor="end">'
            f"{escape(th.label)} {th.value:g}</text>"
        )
    for a in alerts:
        ax = x(a.at.timestamp())
        if PAD_L <= ax <= WIDTH - PAD_R:
            parts.append(
                f'<line x1="{ax:.1f}" x2="{ax:.1f}" y1="{PAD_T}" y2="{PAD_T + plot_h}" '
                f'class="alert sev-{escape(a.severity)}">'
                f"<title>Larm: {escape(a.label)} {a.at:%Y-%m-%d %H:%M}</title></line>"
            )
    if data.downsampled and len(data.t_s):
        band = [f"{x(t):.1f},{y(v):.1f}" for t, v in zip(data.t_s, data.max, strict=True)]
        band += [f"{x(t):.1f},{y(v):.1f}" for t, v in zip(data.t_s[::-1], data.min[::-1], strict=True)]
        parts.append(f'<polygon points="{" ".join(band)}" class="band"/>')
    if len(data.t_s):
        pts = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in zip(data.t_s, data.mean, strict=True))
        parts.append(f'<polyline points="{pts}" class="line"/>')
        if len(data.t_s) <= 200:
            parts.extend(
                f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2.5" class="pt"/>'
                for t, v in zip(data.t_s, data.mean, strict=True)
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - built only from numbers and escaped labels
