"""The Balances page: balances now per currency and template, and the ledger's movements per
period."""

from ..selectors.balances import balance_flows, balance_totals
from .common import form_period, per_currency_charts, period_caption, period_chart_categories
from .section import Column, ReportResult, Section, period_label

_FLOW_LABELS = {
    "topups": "Top-ups",
    "redemptions": "Card redemptions",
    "adjustments_credit": "Adjustments (credit)",
    "adjustments_debit": "Adjustments (debit)",
    "reversals": "Reversals",
    "openings": "Opening balances",
}


def balances_report(form) -> ReportResult:
    period = form_period(form)
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
    totals_section.charts = per_currency_charts(
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
    flows_section.charts = per_currency_charts(
        flow_rows,
        title="Top-ups versus adjustments",
        category=lambda row: period_label(row["period"], period.granularity),
        series=lambda row: row["kind"],
        value_key="v",
        categories=period_chart_categories(period),
        stacked=False,
    )
    return ReportResult(
        caption="Balances now; movements " + period_caption(period, form),
        sections=[totals_section, flows_section],
    )
