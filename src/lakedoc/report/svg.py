"""Inline SVG chart primitives for the run report: no script, no external font or image.

Every function returns one ``<svg>`` element with explicit ``width``/``height``, a ``viewBox``, an
``id``, ``role="img"`` and a ``<title>``; every text is escaped. Sizes are in CSS pixels, text in the
page's own font stack. Values are drawn to scale; the page prints the same numbers as text beside
each chart (the charts only illustrate them).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from html import escape

FONT_PX = 12
CHAR_PX = 7.0  # average glyph width at FONT_PX, for margins
BAR_H = 18
GAP = 6
WIDTH = 640

PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac"]
STATUS_COLORS = {
    "ok": "#59a14f", "succeeded": "#59a14f", "empty": "#bab0ac", "skipped": "#bab0ac",
    "running": "#4e79a7", "image_only": "#edc948", "unsupported": "#f28e2b", "too_large": "#b07aa1",
    "encrypted": "#9c755f", "timeout": "#ff9da7", "corrupt": "#e15759", "error": "#e15759",
    "failed": "#e15759", "abandoned": "#e15759", "redaction_error": "#e15759",
}


def color_for(key: str, index: int) -> str:
    return STATUS_COLORS.get(key, PALETTE[index % len(PALETTE)])


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.3g}"


def _text(x: float, y: float, s: str, *, anchor: str = "start", size: int = FONT_PX, fill: str = "#222",
          weight: str | None = None) -> str:
    w = f' font-weight="{weight}"' if weight else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}"{w}>'
            f"{escape(s)}</text>")


def _svg(chart_id: str, title: str, width: float, height: float, body: list[str]) -> str:
    return (f'<svg id="{escape(chart_id)}" class="chart" xmlns="http://www.w3.org/2000/svg" role="img" '
            f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
            f'aria-label="{escape(title)}"><title>{escape(title)}</title>{"".join(body)}</svg>')


def text_width(s: str, size: int = FONT_PX) -> float:
    """Approximate rendered width: capitals and digits are wider than lower-case letters."""
    wide = sum(1 for c in s if c.isupper() or c.isdigit() or c in "MW_@")
    return (wide * 8.4 + (len(s) - wide) * CHAR_PX) * size / FONT_PX


def _label_margin(labels: Sequence[str], cap: int = 240) -> float:
    return min(cap, max([text_width(s) for s in labels] + [30.0]) + 12)


def _legend(series: Sequence[str], colors: Mapping[str, str], x0: float, y: float,
            width: float) -> tuple[list[str], float]:
    """Legend swatches laid out in rows from (x0, y); returns the elements and the height used."""
    out, x, rows = [], x0, 1
    for s in series:
        w = 16 + len(s) * CHAR_PX + 14
        if x + w > width and x > x0:
            x, rows = x0, rows + 1
        yy = y + (rows - 1) * (BAR_H + 2)
        out.append(f'<rect x="{x:.1f}" y="{yy:.1f}" width="12" height="12" fill="{colors[s]}"/>')
        out.append(_text(x + 16, yy + 10, s))
        x += w
    return out, rows * (BAR_H + 2)


def bar_chart(chart_id: str, title: str, items: Sequence[tuple[str, float]], *, color: str = PALETTE[0],
              colors: Sequence[str] | None = None, value_fmt: Callable[[float], str] = _fmt,
              width: int = WIDTH, max_value: float | None = None) -> str:
    """Horizontal bars, one per (label, value), the value printed at the bar's end."""
    labels = [str(k) for k, _ in items]
    left = _label_margin(labels)
    right = 70
    plot_w = max(40.0, width - left - right)
    top = 8
    height = top + max(1, len(items)) * (BAR_H + GAP) + 8
    vmax = max_value if max_value is not None else max([v for _, v in items] + [0])
    body = []
    if not items:
        body.append(_text(8, top + BAR_H, "no data"))
    for i, (label, value) in enumerate(items):
        y = top + i * (BAR_H + GAP)
        w = 0.0 if vmax <= 0 else plot_w * max(0.0, value) / vmax
        fill = colors[i] if colors else color
        body.append(_text(left - 6, y + BAR_H - 5, str(label), anchor="end"))
        body.append(f'<rect x="{left:.1f}" y="{y:.1f}" width="{max(w, 1.0):.1f}" height="{BAR_H}" fill="{fill}">'
                    f"<title>{escape(str(label))}: {escape(value_fmt(value))}</title></rect>")
        body.append(_text(left + w + 4, y + BAR_H - 5, value_fmt(value)))
    return _svg(chart_id, title, width, height, body)


def stacked_bars(chart_id: str, title: str, rows: Sequence[str], series: Sequence[str],
                 values: Mapping[tuple[str, str], float], *, colors: Mapping[str, str] | None = None,
                 width: int = WIDTH) -> str:
    """One horizontal bar per row, stacked by series (``values[(row, series)]``), with a legend."""
    colors = dict(colors or {s: color_for(s, i) for i, s in enumerate(series)})
    left = _label_margin(rows)
    right = 60
    plot_w = max(40.0, width - left - right)
    totals = {r: sum(values.get((r, s), 0) for s in series) for r in rows}
    vmax = max(list(totals.values()) + [0])
    legend, legend_h = _legend(series, colors, 8, 6, width)
    top = 6 + legend_h + 4
    height = top + max(1, len(rows)) * (BAR_H + GAP) + 8
    body = list(legend)
    if not rows:
        body.append(_text(8, top + BAR_H, "no data"))
    for i, r in enumerate(rows):
        y = top + i * (BAR_H + GAP)
        x = left
        body.append(_text(left - 6, y + BAR_H - 5, r, anchor="end"))
        for s in series:
            v = values.get((r, s), 0)
            if v <= 0 or vmax <= 0:
                continue
            w = plot_w * v / vmax
            body.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{BAR_H}" fill="{colors[s]}">'
                        f"<title>{escape(r)} / {escape(s)}: {_fmt(v)}</title></rect>")
            x += w
        body.append(_text(x + 4, y + BAR_H - 5, _fmt(totals[r])))
    return _svg(chart_id, title, width, height, body)


def grouped_bars(chart_id: str, title: str, groups: Sequence[str], series: Sequence[str],
                 values: Mapping[tuple[str, str], float | None], *, max_value: float = 1.0,
                 width: int = WIDTH, value_fmt: Callable[[float], str] = lambda v: f"{v:.3f}",
                 skip_zero: bool = False) -> str:
    """For each group, one thin bar per series (``values[(group, series)]``; None, or 0 with
    ``skip_zero``: not drawn)."""
    colors = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(series)}
    left = _label_margin(groups)
    right = 60
    plot_w = max(40.0, width - left - right)
    legend, legend_h = _legend(series, colors, 8, 6, width)
    top = 6 + legend_h + 4
    bar = 12
    group_h = len(series) * (bar + 2) + GAP + 2
    height = top + max(1, len(groups)) * group_h + 8
    body = list(legend)
    if not groups:
        body.append(_text(8, top + BAR_H, "no data"))
    for gi, g in enumerate(groups):
        y0 = top + gi * group_h
        body.append(_text(left - 6, y0 + (len(series) * (bar + 2)) / 2 + 4, g, anchor="end"))
        for si, s in enumerate(series):
            v = values.get((g, s))
            if v is None or (skip_zero and v == 0):
                continue
            y = y0 + si * (bar + 2)
            w = plot_w * max(0.0, min(v, max_value)) / max_value if max_value > 0 else 0
            body.append(f'<rect x="{left:.1f}" y="{y:.1f}" width="{max(w, 1.0):.1f}" height="{bar}" '
                        f'fill="{colors[s]}"><title>{escape(g)} {escape(s)}: {escape(value_fmt(v))}</title></rect>')
            body.append(_text(left + w + 4, y + bar - 2, value_fmt(v), size=11))
    return _svg(chart_id, title, width, height, body)


def timeline(chart_id: str, title: str, items: Sequence[tuple[str, float, float, str]], *,
             width: int = WIDTH) -> str:
    """A Gantt chart: (label, start seconds from the run's start, duration seconds, status)."""
    labels = [i[0] for i in items]
    left = _label_margin(labels)
    right = 20
    plot_w = max(40.0, width - left - right)
    span = max([s + d for _, s, d, _ in items] + [1e-9])
    statuses = sorted({st for *_, st in items})
    colors = {s: color_for(s, i) for i, s in enumerate(statuses)}
    legend, legend_h = _legend(statuses, colors, 8, 6, width)
    top = 6 + legend_h + 4
    axis_h = 22
    height = top + max(1, len(items)) * (BAR_H + GAP) + axis_h
    body = list(legend)
    if not items:
        body.append(_text(8, top + BAR_H, "no data"))
    for i, (label, start, dur, status) in enumerate(items):
        y = top + i * (BAR_H + GAP)
        x = left + plot_w * start / span
        w = max(2.0, plot_w * dur / span)
        body.append(_text(left - 6, y + BAR_H - 5, label, anchor="end"))
        body.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{BAR_H}" fill="{colors[status]}">'
                    f"<title>{escape(label)}: {status}, starts at +{start:.1f}s, {dur:.1f}s</title></rect>")
    ay = top + max(1, len(items)) * (BAR_H + GAP) + 2
    body.append(f'<line x1="{left:.1f}" y1="{ay:.1f}" x2="{left + plot_w:.1f}" y2="{ay:.1f}" stroke="#888"/>')
    for k in range(5):
        x = left + plot_w * k / 4
        body.append(f'<line x1="{x:.1f}" y1="{ay:.1f}" x2="{x:.1f}" y2="{ay + 4:.1f}" stroke="#888"/>')
        body.append(_text(x, ay + 16, f"{span * k / 4:.0f}s", anchor="middle", size=11, fill="#555"))
    return _svg(chart_id, title, width, height, body)


def _heat_color(v: float) -> str:
    """0 -> light red, 0.5 -> light yellow, 1 -> green."""
    v = max(0.0, min(1.0, v))
    if v < 0.5:
        a, b, t = (0xf4, 0xa5, 0x82), (0xfe, 0xe0, 0x8b), v / 0.5
    else:
        a, b, t = (0xfe, 0xe0, 0x8b), (0x66, 0xbd, 0x63), (v - 0.5) / 0.5
    r, g, bl = (round(a[i] + (b[i] - a[i]) * t) for i in range(3))
    return f"#{r:02x}{g:02x}{bl:02x}"


def heatmap(chart_id: str, title: str, rows: Sequence[str], cols: Sequence[str],
            values: Mapping[tuple[str, str], float | None], *, width: int = WIDTH) -> str:
    """A rows × cols grid of 0..1 values, each cell coloured and labelled with its value."""
    left = _label_margin(rows)
    cell_h = 22
    head_h = min(120.0, max([len(c) for c in cols] + [4]) * CHAR_PX * 0.75 + 14)
    cell_w = max(34.0, min(70.0, (width - left - 10) / max(1, len(cols))))
    width = int(max(width, left + cell_w * len(cols) + 10))
    height = head_h + max(1, len(rows)) * cell_h + 8
    body = []
    if not rows or not cols:
        body.append(_text(8, 20, "no data"))
    for j, c in enumerate(cols):
        x = left + j * cell_w + cell_w / 2
        body.append(f'<text x="{x:.1f}" y="{head_h - 6:.1f}" font-size="11" fill="#222" '
                    f'transform="rotate(-45 {x:.1f} {head_h - 6:.1f})">{escape(c)}</text>')
    for i, r in enumerate(rows):
        y = head_h + i * cell_h
        body.append(_text(left - 6, y + cell_h - 7, r, anchor="end"))
        for j, c in enumerate(cols):
            v = values.get((r, c))
            x = left + j * cell_w
            fill = "#eeeeee" if v is None else _heat_color(v)
            tip = f"{r} / {c}: " + ("n/a" if v is None else f"{v:.3f}")
            body.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{cell_w - 2:.1f}" height="{cell_h - 2}" '
                        f'fill="{fill}"><title>{escape(tip)}</title></rect>')
            body.append(_text(x + (cell_w - 2) / 2, y + cell_h - 8, "–" if v is None else f"{v:.2f}",
                              anchor="middle", size=10))
    return _svg(chart_id, title, width, height, body)
