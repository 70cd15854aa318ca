"""Redemptions: cards by the time they were redeemed (docs/reports.md, "Redemptions").

The closed days come from the daily summary (`RedemptionDay`), the days after it from the cards;
the value reversed since the summary's end is read from the few cards reversed since then.
"""

import datetime as dt
from collections import defaultdict
from decimal import Decimal

from django.db.models import Count, F, Q, QuerySet, Sum

from cards.models import CardEvent, TopUpCard
from cards.models.events import CardEventKind

from ..models import RedemptionDay
from .common import (
    NO_CHANNEL,
    ZERO,
    Granularity,
    Period,
    as_date,
    card_filters,
    day_summary_until,
    finish_period_rows,
    start_of_day,
    summary_period,
    trunc,
)

SUMMARY = "redemptions"
CENT = Decimal("0.01")  # the places of a card's amount; SQLite's sums may come back longer
SUMMARY_KEYS = ("currency", "reseller_id", "series", "channel")

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
    keys = ("currency", *REDEMPTION_BREAKDOWNS[breakdown])
    scope = {"reseller_id": reseller_id, "currency": currency, "series": series, "channel": channel}
    totals: dict[tuple, list] = defaultdict(lambda: [0, ZERO, ZERO])
    live_since = period.start
    until = day_summary_until(SUMMARY)
    if until is not None and until > period.date_from:
        cut = min(until, period.date_to + dt.timedelta(days=1))
        _add(totals, _summary_rows(period, cut, keys, scope), keys)
        live_since = start_of_day(cut)
        # Cards redeemed on the summarized days and reversed after the summary's end.
        later = redeemed_rows(
            since=period.start,
            until=live_since,
            keys=keys,
            granularity=period.granularity,
            cards=reversed_since(start_of_day(until)),
            **scope,
        )
        _add(totals, ({**row, "count": 0, "value": ZERO} for row in later), keys)
    if live_since < period.end:
        rows = redeemed_rows(
            since=live_since,
            until=period.end,
            keys=keys,
            granularity=period.granularity,
            **scope,
        )
        _add(totals, rows, keys)
    rows = [
        {
            "period": key[0],
            **dict(zip(keys, key[1:], strict=True)),
            "count": count,
            "value": value.quantize(CENT),
            "reversed_value": reversed_value.quantize(CENT),
        }
        for key, (count, value, reversed_value) in totals.items()
    ]
    for row in rows:
        if "channel" in row:
            row["channel"] = row["channel"] or NO_CHANNEL
    return finish_period_rows(rows, REDEMPTION_BREAKDOWNS[breakdown])


def redeemed_rows(
    *,
    since,
    until,
    keys: tuple[str, ...],
    granularity: str = Granularity.DAY,
    reversed_before=None,
    cards: QuerySet | None = None,
    reseller_id: int | None = None,
    currency: str = "",
    series: str = "",
    channel: str = "",
) -> QuerySet:
    """The cards redeemed in [since, until) (`since` None: from the beginning) per `period`
    (the start of its day, week or month in the site's time zone) and `keys`: `count`, `value`
    and `reversed_value` (of the reversals before `reversed_before`, or all of them)."""
    queryset = cards if cards is not None else TopUpCard.objects.all()
    queryset = queryset.filter(activated_at__lt=until)
    if since is not None:
        queryset = queryset.filter(activated_at__gte=since)
    queryset = card_filters(queryset, reseller_id=reseller_id, currency=currency, series=series)
    if channel:
        queryset = queryset.filter(ledger_entry__channel=channel)
    queryset = queryset.order_by().annotate(period=trunc("activated_at", granularity))
    if "channel" in keys:
        queryset = queryset.annotate(channel=F("ledger_entry__channel"))
    reversed_ = Q(reversed_at__isnull=False)
    if reversed_before is not None:
        reversed_ &= Q(reversed_at__lt=reversed_before)
    return queryset.values("period", *keys).annotate(
        count=Count("id"),
        value=Sum("amount"),
        reversed_value=Sum("amount", filter=reversed_, default=ZERO),
    )


def reversed_since(instant: dt.datetime) -> QuerySet:
    """The cards reversed at or after `instant`, found by their `reversed` events (written after
    `reversed_at`, in the same transaction: the (kind, created_at) index) rather than by reading
    every card; the ids as a list so PostgreSQL reads them by primary key."""
    ids = list(
        CardEvent.objects.filter(
            kind=CardEventKind.REVERSED, created_at__gte=instant, card_id__isnull=False
        ).values_list("card_id", flat=True)
    )
    return TopUpCard.objects.filter(pk__in=ids, reversed_at__gte=instant)


def _summary_rows(period: Period, cut: dt.date, keys: tuple[str, ...], scope: dict):
    days = RedemptionDay.objects.filter(day__gte=period.date_from, day__lt=cut)
    for name in ("currency", "series", "channel"):
        if scope[name]:
            days = days.filter(**{name: scope[name]})
    if scope["reseller_id"] is not None:
        days = days.filter(reseller_id=scope["reseller_id"])
    return (
        days.order_by()
        .annotate(period=summary_period(period.granularity))
        .values("period", *keys)
        .annotate(count=Sum("cards"), value=Sum("value"), reversed_value=Sum("reversed_value"))
    )


def _add(totals: dict, rows, keys: tuple[str, ...]) -> None:
    for row in rows:
        # A card without a ledger entry has no channel: None from the cards, "" in the summary.
        key = (row[k] or "" if k == "channel" else row[k] for k in keys)
        total = totals[(as_date(row["period"]), *key)]
        total[0] += row["count"]
        total[1] += row["value"]
        total[2] += row["reversed_value"]
