"""Server-side SVG bar charts: no JavaScript, no CDN, nothing to vendor.

The SVG is inlined in the report page; its colours come from static/reports/reports.css. Money
stays Decimal in the tables and CSV; floats are used here only to place pixels.
"""

import math
from collections import OrderedDict
from collections.abc import Sequence
from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH = 760
HEIGHT = 300
LEFT, RIGHT, TOP, BOTTOM = 72, 12, 16, 64
MAX_SERIES = 8
MAX_BAR = 64
PALETTE_SIZE = 10


def fold_series(
    series: "OrderedDict[str, list[Decimal]]", limit: int = MAX_SERIES
) -> list[tuple[str, list[Decimal]]]:
    """Keep the `limit - 1` largest series and add the rest up as "Other"."""
    items = list(series.items())
    if len(items) <= limit:
        return items
    items.sort(key=lambda item: -sum(abs(v) for v in item[1]))
    kept, rest = items[: limit - 1], items[limit - 1 :]
    other = [sum(values, Decimal(0)) for values in zip(*(v for _, v in rest), strict=True)]
    return [*kept, ("Other", other)]


def _nice_step(span: float, ticks: int = 4) -> float:
    raw = span / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def _short(value: float) -> str:
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:g}{suffix}"
    return f"{value:g}"


def bar_chart(
    *,
    title: str,
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[Decimal]]],
    stacked: bool = True,
) -> SafeString | None:
    """A bar chart: one bar (stacked) or one bar per series (grouped) for each category.

    Grouped charts take negative values (drawn below the zero line); stacked ones expect values
    of one sign. Returns None when there is nothing to draw.
    """
    values = [[float(v) for v in vals] for _, vals in series]
    if not categories or not any(v for vals in values for v in vals):
        return None
    if stacked:
        totals = [sum(max(v, 0) for v in column) for column in zip(*values, strict=True)]
        low, high = 0.0, max(totals)
    else:
        flat = [v for vals in values for v in vals]
        low, high = min(0.0, min(flat)), max(0.0, max(flat))
    if high == low:
        high = low + 1
    step = _nice_step(high - low)
    low = math.floor(low / step) * step
    high = math.ceil(high / step) * step
    x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM

    def y(value: float) -> float:
        return y1 - (value - low) / (high - low) * (y1 - y0)

    parts = [
        f'<svg class="report-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    tick = low
    while tick <= high + step / 2:
        ty = y(tick)
        parts.append(
            f'<line class="grid" x1="{x0}" x2="{x1}" y1="{ty:.1f}" y2="{ty:.1f}"/>'
            f'<text class="tick" x="{x0 - 6}" y="{ty + 4:.1f}" text-anchor="end">'
            f"{_short(tick)}</text>"
        )
        tick += step
    band = (x1 - x0) / len(categories)
    label_every = max(1, math.ceil(len(categories) / 12))
    for index, category in enumerate(categories):
        left = x0 + index * band
        if stacked:
            width = min(band * 0.7, MAX_BAR)
            base = 0.0
            for number, (name, _) in enumerate(series):
                value = max(values[number][index], 0)
                if value == 0:
                    continue
                top, bottom = y(base + value), y(base)
                parts.append(_rect(number, left + (band - width) / 2, top, width, bottom - top))
                parts.append(_tooltip(category, name, series[number][1][index]))
                base += value
        else:
            width = min(band * 0.8 / len(series), MAX_BAR)
            start = left + (band - width * len(series)) / 2
            for number, (name, _) in enumerate(series):
                value = values[number][index]
                if value == 0:
                    continue
                top, bottom = sorted((y(value), y(0)))
                parts.append(_rect(number, start + number * width, top, width, bottom - top))
                parts.append(_tooltip(category, name, series[number][1][index]))
        if index % label_every == 0:
            parts.append(
                f'<text class="label" x="{left + band / 2:.1f}" y="{y1 + 16}" '
                f'text-anchor="middle">{escape(category)}</text>'
            )
    parts.append(f'<line class="axis" x1="{x0}" x2="{x1}" y1="{y(0):.1f}" y2="{y(0):.1f}"/>')
    legend_x = x0
    for number, (name, _) in enumerate(series):
        label = str(name)[:28]
        parts.append(
            f'<rect class="s{number % PALETTE_SIZE}" x="{legend_x}" y="{HEIGHT - 30}" '
            f'width="10" height="10"/><text class="legend" x="{legend_x + 14}" '
            f'y="{HEIGHT - 21}">{escape(label)}</text>'
        )
        legend_x += 24 + 7 * len(label)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above passed through escape()


def _rect(number: int, x: float, y: float, width: float, height: float) -> str:
    # The tooltip <title> is appended right after and closes the element.
    return (
        f'<rect class="s{number % PALETTE_SIZE}" x="{x:.1f}" y="{y:.1f}" '
        f'width="{max(width, 1):.1f}" height="{max(height, 0.5):.1f}">'
    )


def _tooltip(category: str, name: str, value: Decimal) -> str:
    return f"<title>{escape(category)} · {escape(name)}: {escape(str(value))}</title></rect>"
