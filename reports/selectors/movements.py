"""Liability movements added up for a report: the daily summary for the closed days it holds,
the event-sourced view (`history.movements`) for the days after it (reports/README.md)."""

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal

from django.db.models import Count, DateField, F, Sum
from django.db.models.functions import Trunc
from django.utils import timezone

from ..models import CardMovementDay, CardMovementSummary
from .common import Granularity, period_start, start_of_day
from .history.view import movements

PERIOD = "period"
CENT = Decimal("0.01")  # the places of a card's amount; SQLite's sums come back longer


def summarized_until() -> dt.date | None:
    """The first day the summary does not hold (None: no summary)."""
    return CardMovementSummary.objects.values_list("until", flat=True).first()


def movement_totals(
    *,
    until: dt.datetime,
    since: dt.datetime | None = None,
    keys: tuple[str, ...],
    kinds: Iterable[str] | None = None,
    granularity: str = Granularity.DAY,
    reseller_id: int | None = None,
    currency: str = "",
    series: str = "",
    replayed: dict | None = None,
) -> list[dict]:
    """`cards` and `amount` (signed) of the movements at instants in [since, until), grouped by
    `keys` (any of `period`, currency, reseller_id, series, blocked, kind). `since` is the start
    of a day (or None: from the beginning); `until` the start of a day or now. `replayed` keeps
    the days replayed for a caller that asks several totals of one window (the roll-forward)."""
    kinds = tuple(kinds) if kinds is not None else None
    cut = timezone.localdate(until)
    summary = summarized_until()
    totals: dict[tuple, list] = defaultdict(lambda: [0, Decimal(0)])
    live_since = since
    if summary is not None:
        cut = min(cut, summary)
        if since is None or start_of_day(cut) > since:
            live_since = start_of_day(cut)
        _summary_totals(
            totals,
            since=since,
            cut=cut,
            keys=keys,
            kinds=kinds,
            granularity=granularity,
            filters={"reseller_id": reseller_id, "currency": currency, "series": series},
        )
    if live_since is None or live_since < until:
        scope = {"reseller_id": reseller_id, "currency": currency, "series": series}
        key = (live_since, until, *scope.values())
        rows = replayed.get(key) if replayed is not None else None
        if rows is None:
            rows = movements(since=live_since, until=until, **scope)
            if replayed is not None:
                replayed[key] = rows
        for row in rows:
            if kinds is not None and row["kind"] not in kinds:
                continue
            period = period_start(row["day"], granularity)
            total = totals[tuple(period if k == PERIOD else row[k] for k in keys)]
            total[0] += row["cards"]
            total[1] += row["amount"]
    return [
        {**dict(zip(keys, key, strict=True)), "cards": cards, "amount": amount.quantize(CENT)}
        for key, (cards, amount) in totals.items()
    ]


def _summary_totals(totals, *, since, cut, keys, kinds, granularity, filters) -> None:
    days = CardMovementDay.objects.filter(day__lt=cut)
    if since is not None:
        days = days.filter(day__gte=timezone.localdate(since))
    if kinds is not None:
        days = days.filter(kind__in=kinds)
    if filters["reseller_id"] is not None:
        days = days.filter(reseller_id=filters["reseller_id"])
    for name in ("currency", "series"):
        if filters[name]:
            days = days.filter(**{name: filters[name]})
    if PERIOD in keys:
        if granularity == Granularity.DAY:
            days = days.annotate(period=F("day"))
        else:
            days = days.annotate(period=Trunc("day", granularity, output_field=DateField()))
    rows = days.order_by().values(*keys).annotate(n=Count("id"), c=Sum("cards"), a=Sum("amount"))
    for row in rows:
        key = tuple(_date(row[k]) if k == PERIOD else row[k] for k in keys)
        total = totals[key]
        total[0] += row["c"]
        total[1] += row["a"]


def _date(value) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, str):
        return dt.date.fromisoformat(value[:10])
    return value
