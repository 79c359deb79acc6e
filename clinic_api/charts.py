"""Server-rendered SVG charts: one per measurement, thresholds drawn, alerts marked, and the
14-day glucose AGP.

No JavaScript: the markup is built here and wrapped in ``Markup`` only after every label
has been escaped. Hover values are SVG ``<title>`` elements (local time, unit); every
chart has a ``<details>`` table of the same values for screen readers and keyboard users.
Text is sized in the viewBox so that it renders at ≥ 12 CSS px from 660 px of chart width
up (static/charts.css keeps the chart at least that wide and scrolls it below).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import numpy as np
from markupsafe import Markup

from clinic_api import ticks
from clinic_api.agp import PERCENTILES, RANGES, Agp
from clinic_api.chart_limits import Band, Threshold
from clinic_api.downsample import Buckets
from clinic_api.labels import MONTHS, TZ, local_time, number

__all__ = ["AlertMark", "Band", "Threshold", "data_table", "render", "render_agp", "render_tir"]

WIDTH, HEIGHT = 760, 280
PAD_L, PAD_R, PAD_T, PAD_B = 56, 14, 22, 34
FONT_PX = 14  # viewBox units; see the module docstring
LABEL_STEP = 17  # vertical room of one threshold label
MARK_JOIN_PX = 16  # alert markers closer than this are drawn as one, with a count
SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


@dataclass(frozen=True, slots=True)
class AlertMark:
    at: dt.datetime  # the event's time (the evidence's ``at``), not when the alert was opened
    label: str
    severity: str


def _local_short(t_s: float) -> str:
    t = dt.datetime.fromtimestamp(t_s, TZ)
    return f"{t.day} {MONTHS[t.month - 1]} {t:%H:%M}"


def _stack_labels(desired: Sequence[float], top: float, bottom: float) -> list[float]:
    """Label baselines as near their lines as possible, at least ``LABEL_STEP`` apart, within [top, bottom]."""
    order = sorted(range(len(desired)), key=lambda i: desired[i])
    ys = [min(max(desired[i], top), bottom) for i in order]
    for k in range(1, len(ys)):
        ys[k] = max(ys[k], ys[k - 1] + LABEL_STEP)
    if ys and ys[-1] > bottom:
        ys[-1] = bottom
        for k in range(len(ys) - 2, -1, -1):
            ys[k] = min(ys[k], ys[k + 1] - LABEL_STEP)
    out = [0.0] * len(desired)
    for k, i in enumerate(order):
        out[i] = ys[k]
    return out


def cluster_marks(xs: Sequence[float], join_px: float = MARK_JOIN_PX) -> list[list[int]]:
    """Indices of markers grouped left to right: a marker within ``join_px`` of the group's
    previous one joins it."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and xs[i] - xs[groups[-1][-1]] < join_px:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def render(
    title: str,
    unit: str,
    data: Buckets,
    *,
    start: dt.datetime,
    end: dt.datetime,
    thresholds: Sequence[Threshold],
    alerts: Sequence[AlertMark],
    bands: Sequence[Band] = (),
    decimals: int = 1,
    continuous: bool = False,
) -> Markup:
    t0, t1 = start.timestamp(), end.timestamp()
    plot_w, plot_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B
    values = [float(v) for v in data.min] + [float(v) for v in data.max]
    values += [t.value for t in thresholds] + [v for b in bands for v in (b.lo, b.hi)]
    vt = ticks.value_ticks(min(values), max(values), 6) if values else ticks.value_ticks(0, 1)
    lo, hi = vt.lo, vt.hi

    def x(ts: float) -> float:
        return PAD_L + (ts - t0) / max(t1 - t0, 1.0) * plot_w

    def y(v: float) -> float:
        return PAD_T + (hi - v) / (hi - lo) * plot_h

    u = escape(unit)
    parts: list[str] = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" class="chart" '
        f'aria-label="{escape(title)} ({u}), {len(data.t_s)} punkter; tabell med värdena nedan">',
        f'<rect x="{PAD_L}" y="{PAD_T}" width="{plot_w}" height="{plot_h}" class="plot"/>',
    ]
    for b in bands:
        parts.append(
            f'<rect x="{PAD_L}" y="{y(b.hi):.1f}" width="{plot_w}" height="{y(b.lo) - y(b.hi):.1f}" class="target">'
            f"<title>{escape(b.label)}</title></rect>"
            f'<text x="{PAD_L + 6}" y="{y(b.hi) + FONT_PX + 1:.1f}" class="tgl">{escape(b.label)}</text>'
        )
    for v in vt.values:
        parts.append(f'<line x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>')
        parts.append(
            f'<text x="{PAD_L - 6}" y="{y(v) + 5:.1f}" class="ax yt" text-anchor="end" data-value="{v:g}">'
            f"{vt.label(v)}</text>"
        )
    for tk in ticks.time_ticks(t0, t1, max_labels=max(2, plot_w // 80)):
        tx = x(tk.t_s)
        cls = "grid day" if tk.major else "grid minor"
        parts.append(f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{PAD_T}" y2="{PAD_T + plot_h}" class="{cls}"/>')
        if tk.major:
            anchor = "start" if tx - PAD_L < 24 else "end" if WIDTH - PAD_R - tx < 24 else "middle"
            parts.append(
                f'<text x="{tx:.1f}" y="{HEIGHT - 12}" class="ax xt" text-anchor="{anchor}">{escape(tk.label)}</text>'
            )
    # Threshold lines, then their labels stacked so that none overlaps another.
    label_ys = _stack_labels([y(t.value) - 4 for t in thresholds], PAD_T + FONT_PX, PAD_T + plot_h - 4)
    for th, ly in zip(thresholds, label_ys, strict=True):
        cls = "th danger" if th.danger else "th"
        src = "vårdplan" if th.source == "care_plan" else "standard"
        parts.append(
            f'<line x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{y(th.value):.1f}" y2="{y(th.value):.1f}" class="{cls}" '
            f'data-value="{th.value:g}" data-rule="{escape(th.rule_id or "")}" data-source="{escape(th.source)}">'
            f"<title>{escape(th.label)} ({src})</title></line>"
        )
        parts.append(
            f'<text x="{WIDTH - PAD_R - 4}" y="{ly:.1f}" class="thl{" danger" if th.danger else ""}" '
            f'text-anchor="end">{escape(th.label)}</text>'
        )
    if len(data.t_s):
        bucket_s: float | None = None
        if data.downsampled and len(data.t_s) >= 2:
            # Equal-width buckets: the smallest step between centres is the width.
            bucket_s = float(np.min(np.diff(data.t_s)))
        gap = ticks.gap_threshold_s(data.t_s, continuous, bucket_s)
        for i0, i1 in ticks.segments(data.t_s, gap):
            ts, mean = data.t_s[i0:i1], data.mean[i0:i1]
            if data.downsampled and i1 - i0 >= 2:
                band = [f"{x(t):.1f},{y(v):.1f}" for t, v in zip(ts, data.max[i0:i1], strict=True)]
                band += [f"{x(t):.1f},{y(v):.1f}" for t, v in zip(ts[::-1], data.min[i0:i1][::-1], strict=True)]
                parts.append(f'<polygon points="{" ".join(band)}" class="band"/>')
            if i1 - i0 >= 2:
                pts = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in zip(ts, mean, strict=True))
                parts.append(f'<polyline points="{pts}" class="line"/>')
        r = 3.0 if len(data.t_s) <= 200 else 1.8
        half = (float(np.min(np.diff(data.t_s))) / 2 if len(data.t_s) >= 2 else 0.0) if data.downsampled else 0.0
        for k in range(len(data.t_s)):
            t, v = float(data.t_s[k]), float(data.mean[k])
            if data.downsampled:
                tip = (
                    f"{_local_short(t - half)}–{dt.datetime.fromtimestamp(t + half, TZ):%H:%M}: "
                    f"medel {number(v, decimals)} {unit} ({number(float(data.min[k]), decimals)}–"
                    f"{number(float(data.max[k]), decimals)}; {_count(int(data.n[k]))})"
                )
            else:
                tip = f"{_local_short(t)}: {number(v, decimals)} {unit}"
            parts.append(
                f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="{r}" class="pt"><title>{escape(tip)}</title></circle>'
            )
    parts.extend(_markers(alerts, t0, t1, x, plot_h))
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - built only from numbers and escaped labels


def _count(n: int) -> str:
    return f"{number(n, 0)} {'värde' if n == 1 else 'värden'}"


def _markers(alerts: Sequence[AlertMark], t0: float, t1: float, x: object, plot_h: float) -> list[str]:
    assert callable(x)
    shown = [a for a in alerts if t0 <= a.at.timestamp() <= t1]
    xs = [float(x(a.at.timestamp())) for a in shown]
    out: list[str] = []
    for group in cluster_marks(xs):
        gx = sum(xs[i] for i in group) / len(group)
        members = sorted((shown[i] for i in group), key=lambda a: a.at)
        sev = max((m.severity for m in members), key=lambda s: SEVERITY_RANK.get(s, 0))
        tip = "; ".join(f"Larm: {m.label}, {local_time(m.at)}" for m in members)
        s = escape(sev)
        out.append(
            f'<g class="mark" data-count="{len(group)}"><title>{escape(tip)}</title>'
            f'<line x1="{gx:.1f}" x2="{gx:.1f}" y1="{PAD_T}" y2="{PAD_T + plot_h}" class="alert sev-{s}"/>'
            f'<circle cx="{gx:.1f}" cy="{PAD_T - 9}" r="8" class="markhead sev-{s}"/>'
            f'<text x="{gx:.1f}" y="{PAD_T - 4}" class="markn" text-anchor="middle">'
            f"{len(group) if len(group) > 1 else '!'}</text></g>"
        )
    return out


def data_table(title: str, unit: str, data: Buckets, decimals: int = 1) -> Markup:
    """The plotted values as a table (newest first) inside a closed ``<details>``."""
    rows: list[str] = []
    for k in range(len(data.t_s) - 1, -1, -1):
        t = float(data.t_s[k])
        cells = f"<td>{escape(_local_short(t))}</td><td>{number(float(data.mean[k]), decimals)}</td>"
        if data.downsampled:
            cells += (
                f"<td>{number(float(data.min[k]), decimals)}</td><td>{number(float(data.max[k]), decimals)}</td>"
                f"<td>{number(int(data.n[k]), 0)}</td>"
            )
        rows.append(f"<tr>{cells}</tr>")
    head = "<th scope='col'>Tid</th>"
    head += (
        f"<th scope='col'>Medel ({escape(unit)})</th><th scope='col'>Min</th><th scope='col'>Max</th>"
        "<th scope='col'>Antal</th>"
        if data.downsampled
        else f"<th scope='col'>Värde ({escape(unit)})</th>"
    )
    what = "Värden per tidsintervall" if data.downsampled else "Värden"
    return Markup(  # noqa: S704 - escaped labels and numbers only
        f"<details class='chart-table'><summary>{what} i tabellform ({_count(len(data.t_s))})</summary>"
        f"<div class='scroll'><table><caption class='sr'>{escape(title)}</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div></details>"
    )


def render_agp(agp: Agp, title: str = "Glukosprofil (AGP)") -> Markup:
    """Percentile bands over the Stockholm time of day: 5–95 % light, 25–75 % dark, median line."""
    plot_w, plot_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B
    finite = agp.pct[np.isfinite(agp.pct)]
    vt = ticks.value_ticks(min(2.0, float(finite.min())), max(14.0, float(finite.max())), 6)
    lo, hi = vt.lo, vt.hi

    def x(minute: float) -> float:
        return PAD_L + minute / 1440.0 * plot_w

    def y(v: float) -> float:
        return PAD_T + (hi - v) / (hi - lo) * plot_h

    parts = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" class="chart agp" '
        f'aria-label="{escape(title)}, percentiler per tid på dygnet; tabell nedan">',
        f'<rect x="{PAD_L}" y="{PAD_T}" width="{plot_w}" height="{plot_h}" class="plot"/>',
        f'<rect x="{PAD_L}" y="{y(10.0):.1f}" width="{plot_w}" height="{y(3.9) - y(10.0):.1f}" class="target">'
        "<title>Målområde 3,9–10,0 mmol/L</title></rect>",
    ]
    for v in vt.values:
        parts.append(f'<line x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>')
        parts.append(f'<text x="{PAD_L - 6}" y="{y(v) + 5:.1f}" class="ax yt" text-anchor="end">{vt.label(v)}</text>')
    for h in range(0, 25, 3):
        hx = x(h * 60)
        anchor = "start" if h == 0 else "end" if h == 24 else "middle"
        parts.append(f'<line x1="{hx:.1f}" x2="{hx:.1f}" y1="{PAD_T}" y2="{PAD_T + plot_h}" class="grid"/>')
        parts.append(f'<text x="{hx:.1f}" y="{HEIGHT - 12}" class="ax xt" text-anchor="{anchor}">{h:02d}:00</text>')
    for v in (3.9, 10.0):
        parts.append(f'<line x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="th"/>')
    mid = agp.bin_start_min + agp.bin_min / 2
    ok = np.isfinite(agp.pct[2])
    idx = np.flatnonzero(ok)
    runs = ticks.segments(idx.astype(np.float64), 1.0)
    for a, b in runs:
        sel = idx[a:b]
        for lo_row, hi_row, cls in ((0, 4, "agp-outer"), (1, 3, "agp-inner")):
            pts = [f"{x(m):.1f},{y(v):.1f}" for m, v in zip(mid[sel], agp.pct[hi_row, sel], strict=True)]
            pts += [f"{x(m):.1f},{y(v):.1f}" for m, v in zip(mid[sel][::-1], agp.pct[lo_row, sel][::-1], strict=True)]
            parts.append(f'<polygon points="{" ".join(pts)}" class="{cls}"/>')
        if b - a >= 2:
            med = " ".join(f"{x(m):.1f},{y(v):.1f}" for m, v in zip(mid[sel], agp.pct[2, sel], strict=True))
            parts.append(f'<polyline points="{med}" class="agp-median"/>')
    for k in idx:
        tip = (
            f"{_hhmm(int(agp.bin_start_min[k]))}–{_hhmm(int(agp.bin_start_min[k]) + agp.bin_min)}: median "
            f"{number(agp.pct[2, k], 1)} mmol/L; 25–75 %: {number(agp.pct[1, k], 1)}–{number(agp.pct[3, k], 1)}; "
            f"5–95 %: {number(agp.pct[0, k], 1)}–{number(agp.pct[4, k], 1)} ({_count(int(agp.counts[k]))})"
        )
        parts.append(
            f'<circle cx="{x(float(mid[k])):.1f}" cy="{y(float(agp.pct[2, k])):.1f}" r="2.5" class="pt">'
            f"<title>{escape(tip)}</title></circle>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - numbers and escaped labels only


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def agp_table(agp: Agp) -> Markup:
    rows = []
    for k in np.flatnonzero(np.isfinite(agp.pct[2])):
        cells = "".join(f"<td>{number(float(agp.pct[r, k]), 1)}</td>" for r in range(len(PERCENTILES)))
        rows.append(
            f"<tr><td>{_hhmm(int(agp.bin_start_min[k]))}</td>{cells}<td>{number(int(agp.counts[k]), 0)}</td></tr>"
        )
    head = "".join(f"<th scope='col'>{p} %</th>" for p in PERCENTILES)
    return Markup(  # noqa: S704 - numbers only
        "<details class='chart-table'><summary>Percentiler per tid på dygnet i tabellform</summary>"
        "<div class='scroll'><table><caption class='sr'>Glukosprofil, mmol/L</caption>"
        f"<thead><tr><th scope='col'>Från</th>{head}<th scope='col'>Antal</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div></details>"
    )


def render_tir(agp: Agp) -> Markup:
    """A stacked horizontal bar of the five consensus ranges (decorative: the table beside it carries the numbers)."""
    w, h = 340, 40  # about the width of its card on a tablet, so the 16-unit labels stay ≥ 12 px
    parts = [f'<svg viewBox="0 0 {w} {h}" class="tir-bar" aria-hidden="true">']
    xpos = 0.0
    for key, label in RANGES:
        share = agp.ranges_pct[key] / 100.0
        seg = share * w
        if seg > 0:
            parts.append(
                f'<rect x="{xpos:.1f}" y="4" width="{seg:.1f}" height="{h - 8}" class="tir-{key}">'
                f"<title>{escape(label)} mmol/L: {number(agp.ranges_pct[key], 1)} %</title></rect>"
            )
            if seg > 44:
                parts.append(
                    f'<text x="{xpos + seg / 2:.1f}" y="{h / 2 + 6:.1f}" class="tirl tirl-{key}" '
                    f'text-anchor="middle">{number(agp.ranges_pct[key], 0)} %</text>'
                )
        xpos += seg
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - numbers and escaped labels only
