"""The Liability page: the face value owed as of the end of a day (reports/README.md)."""

from django.utils import timezone

from ..selectors.common import end_of_day
from ..selectors.liability import liability
from .common import group_columns, group_label, per_currency_charts, scope_caption
from .section import Column, ReportResult, Section


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
            *group_columns(group_by),
            Column("count", "Cards", "count"),
            Column("value", "Liability", "money"),
            Column("blocked_value", "of which blocked", "money"),
            Column("dormant_value", "of which dormant", "money"),
        ],
        rows=rows,
    )
    section.charts = per_currency_charts(
        rows,
        title="Liability",
        category=group_label,
        series=lambda row: "Liability",
        value_key="value",
    )
    if instant == now:
        caption = f"As of now ({timezone.localtime(now):%Y-%m-%d %H:%M %Z})"
    else:
        caption = f"As of the end of {as_of_day:%Y-%m-%d} ({timezone.get_current_timezone_name()})"
    return ReportResult(caption=caption + scope_caption(form), sections=[section])
