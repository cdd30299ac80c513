"""The usage chart: GPU-hours per day, stacked by GPU type, as inline SVG drawn on the server.

No script is needed to see it; its colours are the stylesheet's (classes
``s0`` .. ``s7``, one per GPU type in the legend's order), every bar says its
day, GPU type and GPU-hours in a ``<title>`` (a tooltip, and what a screen
reader reads), and the page shows the same figures as a table beside it.
"""

from __future__ import annotations

import math

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 8, 12, 24  # the plot's margins: axis labels left and below
SERIES_CLASSES = 8
TICKS = 4


def nice_top(peak: float) -> float:
    """The axis' top: the smallest 1, 2 or 5 x 10^k at or above ``peak`` (1 for an empty chart)."""
    if peak <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(peak))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= peak)


def daily_chart(daily, chart_id: str) -> Markup:
    """The SVG of ``daily`` (service.portal: days, series by GPU type, totals)."""
    n = len(daily.days)
    if n == 0:
        return Markup("")
    top = nice_top(max(daily.totals, default=0.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / n
    parts = [_axis(top, plot_w, plot_h), _day_labels(daily.days, step, plot_h)]
    for i in range(n):
        parts.append(_stack(daily, i, LEFT + i * step + step * 0.15, step * 0.7, top, plot_h))
    title = f"GPU-hours per day, {daily.days[0]} to {daily.days[-1]}, by GPU type"
    body = "".join(parts)
    return Markup(f'<svg id="{escape(chart_id)}" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
                  f'aria-labelledby="{escape(chart_id)}-title" preserveAspectRatio="xMidYMid meet">'
                  f'<title id="{escape(chart_id)}-title">{escape(title)}</title>{body}</svg>')


def _axis(top: float, plot_w: float, plot_h: float) -> str:
    out = []
    for k in range(TICKS + 1):
        value = top * k / TICKS
        y = TOP + plot_h - plot_h * k / TICKS
        out.append(f'<line class="grid" x1="{LEFT}" x2="{LEFT + plot_w:.1f}" y1="{y:.1f}" y2="{y:.1f}"/>'
                   f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_short(value)}</text>')
    return "".join(out)


def _day_labels(days, step: float, plot_h: float) -> str:
    """Day-of-month labels: the first day and every fifth."""
    out = []
    for i, day in enumerate(days):
        d = int(day[8:10])
        if i == 0 or d % 5 == 0:
            x = LEFT + i * step + step / 2
            out.append(f'<text class="tick" x="{x:.1f}" y="{TOP + plot_h + 16:.1f}" text-anchor="middle">{d}</text>')
    return "".join(out)


def _stack(daily, i: int, x: float, w: float, top: float, plot_h: float) -> str:
    y = TOP + plot_h
    out = []
    for k, (gpu, hours) in enumerate(daily.series.items()):
        h = hours[i] / top * plot_h
        if h <= 0:
            continue
        y -= h
        out.append(f'<rect class="bar s{k % SERIES_CLASSES}" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" '
                   f'height="{h:.1f}"><title>{escape(daily.days[i])}: {escape(gpu)} '
                   f'{hours[i]:,.1f} GPU-hours</title></rect>')
    return "".join(out)


def _short(value: float) -> str:
    """An axis label: 0, 250, 1.5k, 20k, 1.2M."""
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"
