"""Turns a valid filter form into what a report page shows: sections with columns, rows (already
aggregated by the selectors), per-currency totals and charts. The admin view and the CSV
download both read from here, so the page and the file always agree."""

import datetime as dt
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from html import escape

from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from wallets.models import Channel

from .charts import bar_chart, fold_series
from .selectors.balances import balance_flows, balance_totals
from .selectors.breakage import breakage
from .selectors.common import Granularity, Period, end_of_day, periods
from .selectors.expiring import EXPIRY_WINDOWS, expiring
from .selectors.liability import liability
from .selectors.redemptions import redemptions
from .selectors.rollforward import rollforward

MAX_CATEGORIES = 30
MAX_CHARTS = 6


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


def _per_currency_charts(
    rows: list[dict],
    *,
    title: str,
    category: Callable[[dict], str],
    series: Callable[[dict], str],
    value_key: str,
    categories: list[str] | None = None,
    stacked: bool = True,
) -> list[tuple[str, SafeString]]:
    """One chart per currency (amounts in different currencies never share an axis)."""
    by_currency: OrderedDict[str, list[dict]] = OrderedDict()
    for row in rows:
        by_currency.setdefault(row["currency"], []).append(row)
    charts = []
    for currency, currency_rows in list(by_currency.items())[:MAX_CHARTS]:
        labels = categories or _top_categories(currency_rows, category, value_key)
        position = {label: index for index, label in enumerate(labels)}
        lines: OrderedDict[str, list[Decimal]] = OrderedDict()
        for row in currency_rows:
            index = position.get(category(row), position.get("Other"))
            if index is None:
                continue
            line = lines.setdefault(series(row), [Decimal(0)] * len(labels))
            line[index] += row[value_key] or 0
        chart_title = f"{title} ({currency})"
        svg = bar_chart(
            title=chart_title, categories=labels, series=fold_series(lines), stacked=stacked
        )
        if svg:
            charts.append((chart_title, svg))
    return charts


def _top_categories(rows: list[dict], category, value_key) -> list[str]:
    totals: OrderedDict[str, Decimal] = OrderedDict()
    for row in rows:
        totals[category(row)] = totals.get(category(row), 0) + (row[value_key] or 0)
    labels = list(totals)
    if len(labels) > MAX_CATEGORIES:
        labels = sorted(labels, key=lambda label: -totals[label])[: MAX_CATEGORIES - 1]
        labels.append("Other")
    return labels


def _group_label(row: dict) -> str:
    return (
        " · ".join(str(row[key]) for key in ("reseller", "series") if key in row) or row["currency"]
    )


def _group_columns(group_by: str) -> list[Column]:
    columns = [Column("currency", "Currency")]
    if group_by in {"reseller", "series"}:
        columns.append(Column("reseller", "Reseller"))
    if group_by == "series":
        columns.append(Column("series", "Series"))
    return columns


def _scope_caption(form) -> str:
    parts = []
    if form.reseller_id is not None:
        reseller = form.fields["reseller"].queryset.filter(pk=form.reseller_id).first()
        parts.append(f"reseller {reseller}")
    for key in ("currency", "series"):
        if form.cleaned_data.get(key):
            parts.append(f"{key} {form.cleaned_data[key]}")
    return f" — {', '.join(parts)}" if parts else ""


def liability_report(form) -> ReportResult:
    as_of_day = form.cleaned_data["as_of"]
    group_by = form.cleaned_data["group_by"]
    # Today has not ended: its figures are those of this moment.
    now = timezone.now()
    instant = min(end_of_day(as_of_day), now)
    rows = liability(
        as_of=instant,
        group_by=group_by,
        reseller_id=form.reseller_id,
        currency=form.cleaned_data["currency"],
        series=form.cleaned_data["series"],
    )
    section = Section(
        key="liability",
        title=(
            "Face value of the cards issued and not yet redeemed, expired, written off or "
            "deleted (blocked and dormant cards included)"
        ),
        columns=[
            *_group_columns(group_by),
            Column("count", "Cards", "count"),
            Column("value", "Liability", "money"),
            Column("blocked_value", "of which blocked", "money"),
            Column("dormant_value", "of which dormant", "money"),
        ],
        rows=rows,
    )
    section.charts = _per_currency_charts(
        rows,
        title="Liability",
        category=_group_label,
        series=lambda row: "Liability",
        value_key="value",
    )
    if instant == now:
        caption = f"As of now ({timezone.localtime(now):%Y-%m-%d %H:%M %Z})"
    else:
        caption = f"As of the end of {as_of_day:%Y-%m-%d} ({timezone.get_current_timezone_name()})"
    return ReportResult(caption=caption + _scope_caption(form), sections=[section])


def _period(form) -> Period:
    return Period(
        date_from=form.cleaned_data["date_from"],
        date_to=form.cleaned_data["date_to"],
        granularity=form.cleaned_data["granularity"],
    )


def _period_caption(period: Period, form) -> str:
    return (
        f"from {period.date_from:%Y-%m-%d} to {period.date_to:%Y-%m-%d} inclusive, "
        f"per {period.granularity}{_scope_caption(form)}"
    )


_BREAKDOWN_COLUMNS = {
    "none": [],
    "channel": [Column("channel", "Channel")],
    "reseller": [Column("reseller", "Reseller")],
    "series": [Column("series", "Series")],
    "reseller_series": [Column("reseller", "Reseller"), Column("series", "Series")],
    "reseller_channel": [Column("reseller", "Reseller"), Column("channel", "Channel")],
}


def _period_chart_categories(period: Period) -> list[str]:
    return [
        period_label(day, period.granularity)
        for day in periods(period.date_from, period.date_to, period.granularity)
    ]


def _series_name(breakdown: str, default: str) -> Callable[[dict], str]:
    """The chart series a row belongs to: its breakdown values, e.g. "Reseller 1 · 100"."""
    keys = [column.key for column in _BREAKDOWN_COLUMNS[breakdown]]
    return lambda row: " · ".join(str(row[key]) for key in keys) if keys else default


def _periodic_report(
    form,
    period: Period,
    rows: list[dict],
    *,
    key: str,
    title: str,
    figures: list[Column],
    chart: str,
    series: str,
) -> ReportResult:
    """A report of one row per period (and breakdown), with one chart per currency; `series`
    names the chart's one series when there is no breakdown."""
    breakdown = form.cleaned_data["breakdown"]
    section = Section(
        key=key,
        title=title,
        columns=[
            Column("period", period.granularity.title(), "period"),
            Column("currency", "Currency"),
            *_BREAKDOWN_COLUMNS[breakdown],
            Column("count", "Cards", "count"),
            *figures,
        ],
        rows=rows,
        granularity=period.granularity,
    )
    section.charts = _per_currency_charts(
        rows,
        title=chart,
        category=lambda row: period_label(row["period"], period.granularity),
        series=_series_name(breakdown, series),
        value_key="value",
        categories=_period_chart_categories(period),
    )
    return ReportResult(caption="F" + _period_caption(period, form)[1:], sections=[section])


def redemptions_report(form) -> ReportResult:
    period = _period(form)
    rows = redemptions(
        period=period,
        breakdown=form.cleaned_data["breakdown"],
        reseller_id=form.reseller_id,
        currency=form.cleaned_data["currency"],
        series=form.cleaned_data["series"],
        channel=form.cleaned_data["channel"],
    )
    channel_names = dict(Channel.choices)
    for row in rows:
        if "channel" in row:
            row["channel"] = channel_names.get(row["channel"], row["channel"])
    return _periodic_report(
        form,
        period,
        rows,
        key="redemptions",
        title="Cards redeemed",
        figures=[
            Column("value", "Value", "money"),
            Column("reversed_value", "of which reversed", "money"),
        ],
        chart="Redeemed value",
        series="Redeemed",
    )


def breakage_report(form) -> ReportResult:
    period = _period(form)
    rows = breakage(
        period=period,
        breakdown=form.cleaned_data["breakdown"],
        reseller_id=form.reseller_id,
        currency=form.cleaned_data["currency"],
        series=form.cleaned_data["series"],
    )
    return _periodic_report(
        form,
        period,
        rows,
        key="breakage",
        title=(
            "Cards that expired unredeemed (booked in the period they expired), and expiries "
            "moved later (booked in the period of the change)"
        ),
        figures=[
            Column("value", "Breakage", "money"),
            Column("blocked_value", "of which blocked", "money"),
            Column("written_off", "Written off", "money"),
            Column("reinstated", "Reinstated", "money"),
            Column("net", "Net breakage", "money"),
        ],
        chart="Breakage",
        series="Breakage",
    )


_ROLLFORWARD_LABELS = {
    "issued": "Issued",
    "redeemed": "Redeemed",
    "reversed": "Redemptions reversed",
    "breakage": "Breakage",
    "written_off": "Written off",
    "reinstated": "Reinstated",
    "deleted": "Deleted",
    "moved": "Moved between resellers",
}


def rollforward_report(form) -> ReportResult:
    period = _period(form)
    breakdown = form.cleaned_data["breakdown"]
    rows = rollforward(
        period=period,
        breakdown=breakdown,
        reseller_id=form.reseller_id,
        currency=form.cleaned_data["currency"],
        series=form.cleaned_data["series"],
    )
    section = Section(
        key="rollforward",
        title="Liability roll-forward: opening + movements = closing",
        columns=[
            Column("period", period.granularity.title(), "period"),
            Column("currency", "Currency"),
            *_BREAKDOWN_COLUMNS[breakdown],
            Column("opening", "Opening liability", "money", total="first"),
            *(Column(key, label, "money") for key, label in _ROLLFORWARD_LABELS.items()),
            Column("closing", "Closing liability", "money", total="last"),
            Column("difference", "Check (opening + movements − closing)", "money"),
        ],
        rows=rows,
        granularity=period.granularity,
    )
    section.charts = _per_currency_charts(
        rows,
        title="Closing liability",
        category=lambda row: period_label(row["period"], period.granularity),
        series=_series_name(breakdown, "Closing liability"),
        value_key="closing",
        categories=_period_chart_categories(period),
    )
    return ReportResult(caption="F" + _period_caption(period, form)[1:], sections=[section])


def expiring_report(form) -> ReportResult:
    group_by = form.cleaned_data["group_by"]
    now = timezone.now()
    scope = {
        "now": now,
        "group_by": group_by,
        "reseller_id": form.reseller_id,
        "currency": form.cleaned_data["currency"],
        "series": form.cleaned_data["series"],
    }
    sections = [
        _expiring_section(
            expiring(**scope),
            group_by,
            key="expiring",
            title="Redeemable cards expiring soon",
            chart="Value expiring",
        ),
        # Apart: a dormant card cannot be redeemed until its box is delivered (docs/printing.md),
        # but it expires all the same, as breakage of stock never sold.
        _expiring_section(
            expiring(**scope, dormant=True),
            group_by,
            key="dormant",
            title="Dormant cards (box not delivered yet) expiring soon",
            chart="Dormant value expiring",
        ),
    ]
    caption = f"From now ({timezone.localtime(now):%Y-%m-%d %H:%M %Z}){_scope_caption(form)}"
    return ReportResult(caption=caption, sections=sections)


def _expiring_section(rows, group_by: str, *, key: str, title: str, chart: str) -> Section:
    window_columns = []
    for days in EXPIRY_WINDOWS:
        window_columns += [
            Column(f"count_{days}", f"Cards within {days} days", "count"),
            Column(f"value_{days}", f"Value within {days} days", "money"),
        ]
    section = Section(
        key=key, title=title, columns=[*_group_columns(group_by), *window_columns], rows=rows
    )
    # Each window includes the shorter ones: chart the value of each window, stacked by group.
    windows = [f"within {days} days" for days in EXPIRY_WINDOWS]
    window_rows = [
        {**row, "window": label, "window_value": row[f"value_{days}"]}
        for row in rows
        for days, label in zip(EXPIRY_WINDOWS, windows, strict=True)
    ]
    section.charts = _per_currency_charts(
        window_rows,
        title=chart,
        category=lambda row: row["window"],
        series=_group_label,
        value_key="window_value",
        categories=windows,
    )
    return section


_FLOW_LABELS = {
    "topups": "Top-ups",
    "redemptions": "Card redemptions",
    "adjustments_credit": "Adjustments (credit)",
    "adjustments_debit": "Adjustments (debit)",
    "reversals": "Reversals",
    "openings": "Opening balances",
}


def balances_report(form) -> ReportResult:
    period = _period(form)
    template = form.cleaned_data.get("template")
    template_id = template.pk if template else None
    currency = form.cleaned_data["currency"]
    totals = balance_totals(
        reseller_id=form.reseller_id, currency=currency, template_id=template_id
    )
    totals_section = Section(
        key="totals",
        title="Balances now, per currency and balance template",
        columns=[
            Column("currency", "Currency / unit"),
            Column("template", "Balance template"),
            Column("count", "Balances", "count"),
            Column("value", "Total", "money"),
        ],
        rows=totals,
    )
    totals_section.charts = _per_currency_charts(
        totals,
        title="Total balance",
        category=lambda row: row["template"],
        series=lambda row: "Total",
        value_key="value",
    )
    flows = balance_flows(
        period=period, reseller_id=form.reseller_id, currency=currency, template_id=template_id
    )
    flows_section = Section(
        key="flows",
        title="Top-ups versus adjustments (ledger entries)",
        columns=[
            Column("period", period.granularity.title(), "period"),
            Column("currency", "Currency / unit"),
            *(Column(key, label, "money") for key, label in _FLOW_LABELS.items()),
            Column("net", "Net change", "money"),
            Column("entries", "Entries", "count"),
        ],
        rows=flows,
        granularity=period.granularity,
    )
    flow_rows = [
        {"currency": row["currency"], "period": row["period"], "kind": label, "v": row[key]}
        for row in flows
        for key, label in _FLOW_LABELS.items()
        if key != "openings"
    ]
    flows_section.charts = _per_currency_charts(
        flow_rows,
        title="Top-ups versus adjustments",
        category=lambda row: period_label(row["period"], period.granularity),
        series=lambda row: row["kind"],
        value_key="v",
        categories=_period_chart_categories(period),
        stacked=False,
    )
    return ReportResult(
        caption="Balances now; movements " + _period_caption(period, form),
        sections=[totals_section, flows_section],
    )


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
