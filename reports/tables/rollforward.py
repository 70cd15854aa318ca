"""The Liability roll-forward page: opening, movements, closing and the check, per period."""

from ..selectors.rollforward import rollforward
from .common import (
    BREAKDOWN_COLUMNS,
    form_period,
    per_currency_charts,
    period_caption,
    period_chart_categories,
    series_name,
)
from .section import Column, ReportResult, Section, period_label

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
    period = form_period(form)
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
            *BREAKDOWN_COLUMNS[breakdown],
            Column("opening", "Opening liability", "money", total="first"),
            *(Column(key, label, "money") for key, label in _ROLLFORWARD_LABELS.items()),
            Column("closing", "Closing liability", "money", total="last"),
            Column("difference", "Check (opening + movements − closing)", "money"),
        ],
        rows=rows,
        granularity=period.granularity,
    )
    section.charts = per_currency_charts(
        rows,
        title="Closing liability",
        category=lambda row: period_label(row["period"], period.granularity),
        series=series_name(breakdown, "Closing liability"),
        value_key="closing",
        categories=period_chart_categories(period),
    )
    return ReportResult(caption="F" + period_caption(period, form)[1:], sections=[section])
