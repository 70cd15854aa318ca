"""Expiring soon: cards redeemable now that expire within the next windows of days, and apart
the dormant stock (not delivered, so not redeemable) that does (docs/reports.md, "Expiring
soon")."""

import datetime as dt

from django.db.models import Count, Q, Sum
from django.utils import timezone

from cards.models import TopUpCard
from cards.models.cards import CardStatus

from .common import CARD_GROUPINGS, ZERO, card_filters, name_resellers, reseller_order

EXPIRY_WINDOWS = (7, 30, 90)


def expiring(
    *,
    now: dt.datetime | None = None,
    group_by: str = "reseller",
    reseller_id: int | None = None,
    currency: str = "",
    series: str = "",
    dormant: bool = False,
) -> list[dict]:
    """Redeemable cards (status new) expiring within 7, 30 and 90 days from now (each window
    includes the shorter ones): `count_7`, `value_7`, `count_30`, ... With `dormant`, the cards
    not delivered yet instead (status dormant, blocked or not) whose expiry is still ahead."""
    now = now or timezone.now()
    keys = CARD_GROUPINGS[group_by]
    horizon = {days: now + dt.timedelta(days=days) for days in EXPIRY_WINDOWS}
    if dormant:
        cards = TopUpCard.objects.with_status(CardStatus.DORMANT, at=now).filter(expires_at__gt=now)
    else:
        cards = TopUpCard.objects.new(at=now)
    queryset = card_filters(
        cards.filter(expires_at__lte=horizon[max(EXPIRY_WINDOWS)]),
        reseller_id=reseller_id,
        currency=currency,
        series=series,
    )
    aggregates = {}
    for days in EXPIRY_WINDOWS:
        within = Q(expires_at__lte=horizon[days])
        aggregates[f"count_{days}"] = Count("id", filter=within)
        aggregates[f"value_{days}"] = Sum("amount", filter=within, default=ZERO)
    rows = list(queryset.order_by().values(*keys).annotate(**aggregates).order_by(*keys))
    rows = name_resellers(rows)
    if "reseller_id" in keys:
        rows.sort(key=lambda r: (r["currency"], reseller_order(r), r.get("series", "")))
    return rows
