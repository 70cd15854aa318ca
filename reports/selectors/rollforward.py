"""The liability roll-forward: opening liability, each kind of movement, closing liability, per
period, currency and reseller, and the check that they tie (reports/README.md)."""

import datetime as dt
from decimal import Decimal

from django.utils import timezone

from .common import Period, finish_period_rows, periods
from .history.window import Kind
from .movements import PERIOD, movement_totals

ROLLFORWARD_BREAKDOWNS = {"reseller": ("reseller_id",), "none": ()}

# The movements a roll-forward shows, in its order. Blocking and unblocking only move value
# between "blocked" and "not blocked" inside liability: they add up to nothing per row and show
# only through the check.
COLUMNS = (
    Kind.ISSUED,
    Kind.REDEEMED,
    Kind.REVERSED,
    Kind.BREAKAGE,
    Kind.WRITTEN_OFF,
    Kind.REINSTATED,
    Kind.DELETED,
    Kind.MOVED,
)


def rollforward(
    *,
    period: Period,
    now: dt.datetime | None = None,
    breakdown: str = "reseller",
    reseller_id: int | None = None,
    currency: str = "",
    series: str = "",
) -> list[dict]:
    """One row per period, currency (and reseller): `opening`, a signed amount per kind of
    COLUMNS, `closing`, and `difference` = opening + those columns − closing (zero when they tie).

    The opening of the first period and the closing of the last are liability as of those
    instants, asked on their own; the periods between carry the closing forward."""
    now = now or timezone.now()
    end = min(period.end, now)
    group = ("currency", *ROLLFORWARD_BREAKDOWNS[breakdown])
    scope = {
        "reseller_id": reseller_id,
        "currency": currency,
        "series": series,
        "replayed": {},  # the closing and the movements share the days after the summary
    }
    opening = _balances(movement_totals(until=period.start, keys=group, **scope), group)
    closing = _balances(movement_totals(until=end, keys=group, **scope), group)
    moves: dict[tuple, dict[str, Decimal]] = {}
    for total in movement_totals(
        since=period.start,
        until=end,
        keys=(PERIOD, *group, "kind"),
        granularity=period.granularity,
        **scope,
    ):
        key = (total[PERIOD], *(total[k] for k in group))
        by_kind = moves.setdefault(key, {})
        by_kind[total["kind"]] = by_kind.get(total["kind"], Decimal(0)) + total["amount"]
    buckets = [
        day
        for day in periods(period.date_from, period.date_to, period.granularity)
        if day <= timezone.localdate(end)
    ]
    rows = []
    for key in sorted(set(opening) | set(closing) | {k[1:] for k in moves}, key=str):
        balance = opening.get(key, Decimal(0))
        for index, bucket in enumerate(buckets):
            by_kind = moves.get((bucket, *key), {})
            if not balance and not by_kind and not (index == len(buckets) - 1 and key in closing):
                continue
            row = {PERIOD: bucket, **dict(zip(group, key, strict=True)), "opening": balance}
            row.update({kind: by_kind.get(kind, Decimal(0)) for kind in COLUMNS})
            carried = balance + sum(by_kind.values(), Decimal(0))
            row["closing"] = closing.get(key, Decimal(0)) if index == len(buckets) - 1 else carried
            row["difference"] = (
                balance + sum((row[kind] for kind in COLUMNS), Decimal(0)) - row["closing"]
            )
            balance = carried
            rows.append(row)
    return finish_period_rows(rows, ROLLFORWARD_BREAKDOWNS[breakdown])


def _balances(totals: list[dict], group: tuple[str, ...]) -> dict[tuple, Decimal]:
    return {tuple(t[k] for k in group): t["amount"] for t in totals if t["amount"] or t["cards"]}
