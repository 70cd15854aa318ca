"""The Expiring soon page: redeemable cards, and apart the dormant ones, expiring in the next
windows of days."""

from django.utils import timezone

from ..selectors.expiring import EXPIRY_WINDOWS, expiring
from .common import group_columns, group_label, per_currency_charts, scope_caption
from .section import Column, ReportResult, Section


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
    caption = f"From now ({timezone.localtime(now):%Y-%m-%d %H:%M %Z}){scope_caption(form)}"
    return ReportResult(caption=caption, sections=sections)


def _expiring_section(rows, group_by: str, *, key: str, title: str, chart: str) -> Section:
    window_columns = []
    for days in EXPIRY_WINDOWS:
        window_columns += [
            Column(f"count_{days}", f"Cards within {days} days", "count"),
            Column(f"value_{days}", f"Value within {days} days", "money"),
        ]
    section = Section(
        key=key, title=title, columns=[*group_columns(group_by), *window_columns], rows=rows
    )
    # Each window includes the shorter ones: chart the value of each window, stacked by group.
    windows = [f"within {days} days" for days in EXPIRY_WINDOWS]
    window_rows = [
        {**row, "window": label, "window_value": row[f"value_{days}"]}
        for row in rows
        for days, label in zip(EXPIRY_WINDOWS, windows, strict=True)
    ]
    section.charts = per_currency_charts(
        window_rows,
        title=chart,
        category=lambda row: row["window"],
        series=group_label,
        value_key="window_value",
        categories=windows,
    )
    return section
