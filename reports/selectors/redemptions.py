"""Redemptions: cards by the time they were redeemed (docs/reports.md, "Redemptions")."""

from django.db.models import Count, F, Q, Sum

from cards.models import TopUpCard

from .common import NO_CHANNEL, ZERO, Period, card_filters, finish_period_rows, trunc

REDEMPTION_BREAKDOWNS = {
    "none": (),
    "channel": ("channel",),
    "reseller": ("reseller_id",),
    "series": ("series",),
    "reseller_series": ("reseller_id", "series"),
    "reseller_channel": ("reseller_id", "channel"),
}


def redemptions(
    *,
    period: Period,
    breakdown: str = "none",
    reseller_id: int | None = None,
    currency: str = "",
    series: str = "",
    channel: str = "",
) -> list[dict]:
    """Cards redeemed in the period: count and value per period, currency and breakdown, and
    how much of that value was reversed since."""
    queryset = card_filters(
        TopUpCard.objects.filter(activated_at__gte=period.start, activated_at__lt=period.end),
        reseller_id=reseller_id,
        currency=currency,
        series=series,
    )
    if channel:
        queryset = queryset.filter(ledger_entry__channel=channel)
    extra = REDEMPTION_BREAKDOWNS[breakdown]
    queryset = queryset.order_by().annotate(period=trunc("activated_at", period.granularity))
    if "channel" in extra:
        queryset = queryset.annotate(channel=F("ledger_entry__channel"))
    rows = list(
        queryset.values("period", "currency", *extra).annotate(
            count=Count("id"),
            value=Sum("amount"),
            reversed_value=Sum("amount", filter=Q(reversed_at__isnull=False), default=ZERO),
        )
    )
    for row in rows:
        if "channel" in row:
            row["channel"] = row["channel"] or NO_CHANNEL
    return finish_period_rows(rows, extra)
