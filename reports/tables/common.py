"""What the report builders share: the charts per currency, the captions of the filters, the
group and breakdown columns, and the shape of a report of one row per period."""

from collections import OrderedDict
from collections.abc import Callable
from decimal import Decimal

from django.utils.safestring import SafeString

from ..charts import bar_chart, fold_series
from ..selectors.common import Period, periods
from .section import Column, ReportResult, Section, period_label

MAX_CATEGORIES = 30
MAX_CHARTS = 6


def per_currency_charts(
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


def group_label(row: dict) -> str:
    return (
        " · ".join(str(row[key]) for key in ("reseller", "series") if key in row) or row["currency"]
    )


def group_columns(group_by: str) -> list[Column]:
    columns = [Column("currency", "Currency")]
    if group_by in {"reseller", "series"}:
        columns.append(Column("reseller", "Reseller"))
    if group_by == "series":
        columns.append(Column("series", "Series"))
    return columns


def scope_caption(form) -> str:
    parts = []
    if form.reseller_id is not None:
        reseller = form.fields["reseller"].queryset.filter(pk=form.reseller_id).first()
        parts.append(f"reseller {reseller}")
    for key in ("currency", "series"):
        if form.cleaned_data.get(key):
            parts.append(f"{key} {form.cleaned_data[key]}")
    return f" — {', '.join(parts)}" if parts else ""


def form_period(form) -> Period:
    return Period(
        date_from=form.cleaned_data["date_from"],
        date_to=form.cleaned_data["date_to"],
        granularity=form.cleaned_data["granularity"],
    )


def period_caption(period: Period, form) -> str:
    return (
        f"from {period.date_from:%Y-%m-%d} to {period.date_to:%Y-%m-%d} inclusive, "
        f"per {period.granularity}{scope_caption(form)}"
    )


BREAKDOWN_COLUMNS = {
    "none": [],
    "channel": [Column("channel", "Channel")],
    "reseller": [Column("reseller", "Reseller")],
    "series": [Column("series", "Series")],
    "reseller_series": [Column("reseller", "Reseller"), Column("series", "Series")],
    "reseller_channel": [Column("reseller", "Reseller"), Column("channel", "Channel")],
}


def period_chart_categories(period: Period) -> list[str]:
    return [
        period_label(day, period.granularity)
        for day in periods(period.date_from, period.date_to, period.granularity)
    ]


def series_name(breakdown: str, default: str) -> Callable[[dict], str]:
    """The chart series a row belongs to: its breakdown values, e.g. "Reseller 1 · 100"."""
    keys = [column.key for column in BREAKDOWN_COLUMNS[breakdown]]
    return lambda row: " · ".join(str(row[key]) for key in keys) if keys else default


def periodic_report(
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
            *BREAKDOWN_COLUMNS[breakdown],
            Column("count", "Cards", "count"),
            *figures,
        ],
        rows=rows,
        granularity=period.granularity,
    )
    section.charts = per_currency_charts(
        rows,
        title=chart,
        category=lambda row: period_label(row["period"], period.granularity),
        series=series_name(breakdown, series),
        value_key="value",
        categories=period_chart_categories(period),
    )
    return ReportResult(caption="F" + period_caption(period, form)[1:], sections=[section])
