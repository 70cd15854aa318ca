"""The SVG charts draw what the tables say."""

import re
from collections import OrderedDict
from decimal import Decimal

from reports.charts import bar_chart, fold_series


def bars(svg: str) -> list[tuple[str, float, float]]:
    """(css class, y, height) of each bar, in drawing order (legend swatches excluded)."""
    return [
        (cls, float(y), float(h))
        for cls, y, h in re.findall(
            r'<rect class="(s\d)" x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)"><title>',
            svg,
        )
    ]


def test_stacked_bars_are_proportional_to_the_values():
    svg = bar_chart(
        title="Redeemed",
        categories=["2026-10", "2026-11"],
        series=[("panel", [Decimal("10"), Decimal("30")]), ("rest", [Decimal("30"), Decimal(0)])],
    )

    drawn = bars(svg)
    assert [cls for cls, _, _ in drawn] == ["s0", "s1", "s0"]  # no bar for a zero
    (_, _, panel_oct), (_, _, rest_oct), (_, _, panel_nov) = drawn
    assert abs(rest_oct / panel_oct - 3) < 0.01
    assert abs((panel_oct + rest_oct) / panel_nov - 40 / 30) < 0.01
    assert "<title>2026-11 · panel: 30</title>" in svg


def test_grouped_bars_draw_negative_values_below_the_zero_line():
    svg = bar_chart(
        title="Flows",
        categories=["d1"],
        series=[("Top-ups", [Decimal("50")]), ("Adjustments −", [Decimal("-25")])],
        stacked=False,
    )

    zero = float(re.search(r'<line class="axis" x1="\d+" x2="\d+" y1="([\d.]+)"', svg).group(1))
    (_, top_y, top_h), (_, low_y, low_h) = bars(svg)
    assert abs(top_y + top_h - zero) < 0.2 and abs(low_y - zero) < 0.2
    assert abs(top_h / low_h - 2) < 0.01


def test_nothing_to_draw():
    assert bar_chart(title="x", categories=[], series=[]) is None
    assert bar_chart(title="x", categories=["a"], series=[("s", [Decimal(0)])]) is None


def test_labels_are_escaped():
    svg = bar_chart(title="<b>", categories=["<i>"], series=[("<script>", [Decimal(1)])])
    assert "<script>" not in svg and "<i>" not in svg and "&lt;script&gt;" in svg


def test_small_series_are_folded_into_other():
    series = OrderedDict((f"R{n}", [Decimal(n)]) for n in range(1, 11))

    folded = fold_series(series, limit=4)

    assert [name for name, _ in folded] == ["R10", "R9", "R8", "Other"]
    assert folded[-1][1] == [Decimal(sum(range(1, 8)))]
