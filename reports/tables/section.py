"""A report's table: its columns, its rows as the page shows them (HTML built here) and as the
CSV writes them, and the total line per currency."""

import datetime as dt
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from html import escape

from django.utils.safestring import SafeString, mark_safe

from ..selectors.common import Granularity


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str = "text"  # text | count | money | period
    total: str = "sum"
    """How the total line adds the column up: `sum` of every row, or a balance taken from the
    `first` / `last` period only (an opening or a closing liability)."""

    @property
    def numeric(self) -> bool:
        return self.kind in {"count", "money"}


@dataclass
class Section:
    key: str
    title: str
    columns: list[Column]
    rows: list[dict]
    charts: list[tuple[str, SafeString]] = field(default_factory=list)
    granularity: str = ""

    @property
    def totals(self) -> list[dict]:
        """One line per currency adding up every numeric column (none when no currency has more
        than one row: the rows are their own totals then)."""
        label = next((c for c in self.columns if c.key != "currency" and not c.numeric), None)
        sums: OrderedDict[str, dict] = OrderedDict()
        lines: dict[str, int] = {}
        first: dict[str, object] = {}
        last: dict[str, object] = {}
        for row in self.rows:
            currency = row["currency"]
            lines[currency] = lines.get(currency, 0) + 1
            if row.get("period") is not None:
                first[currency] = min(first.get(currency, row["period"]), row["period"])
                last[currency] = max(last.get(currency, row["period"]), row["period"])
        for row in self.rows:
            currency = row["currency"]
            total = sums.setdefault(currency, {"currency": currency})
            if label is not None:
                total[label.key] = "Total"
            for column in self.columns:
                if not column.numeric:
                    continue
                total.setdefault(column.key, 0)
                if column.total == "first" and row.get("period") != first.get(currency):
                    continue
                if column.total == "last" and row.get("period") != last.get(currency):
                    continue
                total[column.key] += row[column.key] or 0
        return list(sums.values()) if any(n > 1 for n in lines.values()) else []

    def display(self, row: dict) -> list[tuple[str, bool]]:
        """The row as the page shows it: (text, right-aligned) per column."""
        cells = []
        for column in self.columns:
            value = row.get(column.key)
            if value is None:
                text = "" if column.kind != "text" or column.key not in row else "—"
            elif column.kind == "period" and isinstance(value, dt.date):
                text = period_label(value, self.granularity)
            elif column.kind == "money" and isinstance(value, Decimal | int):
                text = f"{money_places(value):,}"
            elif column.kind == "count":
                text = f"{value:,}"
            else:
                text = str(value)
            cells.append((text, column.numeric))
        return cells

    @property
    def body_html(self) -> SafeString:
        """The table's rows as HTML, built here rather than by the template's loops over cells:
        a roll-forward of 30 days per reseller has 625 rows of 13 cells, and the template
        engine's per-cell tags were most of the page's time (docs/reports.md, "Speed"). Every
        cell is escaped as the template escaped it (django.utils.html.escape is this same
        `html.escape`, behind a lazy-string wrapper that costs more than the escaping); the
        markup is the one the template wrote (tests/reports/test_render.py)."""
        return self._rows_html(self.rows, "<tr>")

    @property
    def foot_html(self) -> SafeString:
        """The total lines as HTML (empty when there are none), built as `body_html` is."""
        return self._rows_html(self.totals, '<tr class="total">')

    def _rows_html(self, rows: list[dict], opening: str) -> SafeString:
        lines = []
        for row in rows:
            cells = "".join(
                f'<td class="num">{escape(text)}</td>' if numeric else f"<td>{escape(text)}</td>"
                for text, numeric in self.display(row)
            )
            lines.append(f"{opening}{cells}</tr>\n")
        return mark_safe("".join(lines))  # noqa: S308 - every cell is escaped above


@dataclass
class ReportResult:
    caption: str
    sections: list[Section]


def period_label(day: dt.date, granularity: str) -> str:
    if granularity == Granularity.MONTH:
        return day.strftime("%Y-%m")
    if granularity == Granularity.WEEK:
        return f"wk {day.isoformat()}"
    return day.isoformat()


def csv_cells(section: Section, row: dict) -> Iterable[str]:
    for column in section.columns:
        value = row.get(column.key)
        if value is None:
            yield ""
        elif column.kind == "period" and isinstance(value, dt.date):
            yield value.isoformat()
        elif column.kind == "money":
            yield str(money_places(value))
        else:
            yield str(value)


def money_places(value: Decimal) -> Decimal:
    """At least two decimal places, and no trailing zeros beyond them (balances keep six)."""
    value = Decimal(value)
    two = value.quantize(Decimal("0.01"))
    return two if two == value else value.normalize()
