"""The Breakage page: cards that expired unredeemed, written off and reinstated, per period."""

from ..selectors.breakage import breakage
from .common import form_period, periodic_report
from .section import Column, ReportResult


def breakage_report(form) -> ReportResult:
    period = form_period(form)
    rows = breakage(
        period=period,
        breakdown=form.cleaned_data["breakdown"],
        reseller_id=form.reseller_id,
        currency=form.cleaned_data["currency"],
        series=form.cleaned_data["series"],
    )
    return periodic_report(
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
            Column("dormant_value", "of which dormant", "money"),
            Column("written_off", "Written off", "money"),
            Column("reinstated", "Reinstated", "money"),
            Column("net", "Net breakage", "money"),
        ],
        chart="Breakage",
        series="Breakage",
    )
