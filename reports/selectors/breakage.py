"""Breakage: cards that expired unredeemed, counted in the period they expired, deleted cards
included (docs/reports.md, "Breakage")."""

import datetime as dt

from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from cards.models import TopUpCard

from .audit import deleted_cards
from .common import ZERO, Instant, Period, card_filters, finish_period_rows, instant, merge, trunc

BREAKAGE_BREAKDOWNS = {
    "none": (),
    "reseller": ("reseller_id",),
    "series": ("series",),
    "reseller_series": ("reseller_id", "series"),
}


def breakage(
    *,
    period: Period,
    now: dt.datetime | None = None,
    breakdown: str = "none",
    reseller_id: int | None = None,
    currency: str = "",
    series: str = "",
) -> list[dict]:
    """Cards that expired unredeemed in the period (up to now), counted in the period they expired.

    Blocked cards that expired unredeemed are breakage too; `blocked_value` shows how much of it.
    """
    now = now or timezone.now()
    queryset = card_filters(
        TopUpCard.objects.filter(
            activated_at__isnull=True,
            dormant=False,  # never delivered, never owed: not breakage (docs/cards.md)
            expires_at__gte=period.start,
            expires_at__lt=period.end,
            expires_at__lte=now,
        ),
        reseller_id=reseller_id,
        currency=currency,
        series=series,
    )
    deleted = card_filters(
        deleted_cards().filter(
            # Expired while the card still existed: one deleted at its expiry instant or before
            # is a deletion, not breakage.
            Q(expires_at__lt=Instant(F("created_at"))),
            # So deleted after the period's start: the index on (kind, created_at) reads only
            # the deletions since then.
            created_at__gt=period.start,
            expires_at__gte=instant(period.start),
            expires_at__lt=instant(period.end),
            expires_at__lte=instant(now),
        ),
        reseller_id=reseller_id,
        currency=currency,
        series=series,
    )
    extra = BREAKAGE_BREAKDOWNS[breakdown]
    aggregates = {
        "count": Count("id"),
        "value": Sum("amount"),
        "blocked_value": Sum("amount", filter=Q(blocked=True), default=ZERO),
    }
    keys = ("period", "currency", *extra)
    rows, more = (
        list(
            cards.order_by()
            .annotate(period=trunc("expires_at", period.granularity))
            .values(*keys)
            .annotate(**aggregates)
        )
        for cards in (queryset, deleted)
    )
    return finish_period_rows(merge(rows, more, keys, tuple(aggregates)), extra)
