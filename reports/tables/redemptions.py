"""The Redemptions page: cards redeemed per period and breakdown."""

from wallets.models import Channel

from ..selectors.redemptions import redemptions
from .common import form_period, periodic_report
from .section import Column, ReportResult


def redemptions_report(form) -> ReportResult:
    period = form_period(form)
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
    return periodic_report(
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
