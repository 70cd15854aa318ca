"""Liability as of an instant: the face value of the cards owed then, the sum of every movement
of the event-sourced view before it (reports/README.md, "Liability")."""

import datetime as dt
from decimal import Decimal

from .common import CARD_GROUPINGS, name_resellers, reseller_order
from .movements import movement_totals


def liability(
    *,
    as_of: dt.datetime,
    group_by: str = "reseller",
    reseller_id: int | None = None,
    currency: str = "",
    series: str = "",
) -> list[dict]:
    """Count and face value of the cards owed just before `as_of` (issued, not redeemed, expired,
    written off or deleted by then; blocked ones included, `blocked_value` says how much, and
    dormant ones, `dormant_value`), by
    currency (+ reseller, + series), each card under the reseller it had then."""
    keys = CARD_GROUPINGS[group_by]
    rows: dict[tuple, dict] = {}
    for total in movement_totals(
        until=as_of,
        keys=(*keys, "blocked", "dormant"),
        reseller_id=reseller_id,
        currency=currency,
        series=series,
    ):
        key = tuple(total[k] for k in keys)
        row = rows.setdefault(
            key,
            {
                **dict(zip(keys, key, strict=True)),
                "count": 0,
                "value": Decimal(0),
                "blocked_value": Decimal(0),
                "dormant_value": Decimal(0),
            },
        )
        row["count"] += total["cards"]
        row["value"] += total["amount"]
        if total["blocked"]:
            row["blocked_value"] += total["amount"]
        if total["dormant"]:
            row["dormant_value"] += total["amount"]
    result = name_resellers([row for row in rows.values() if row["count"] or row["value"]])
    result.sort(
        key=lambda r: (
            r["currency"],
            reseller_order(r) if "reseller_id" in keys else (False, ""),
            r.get("series", ""),
        )
    )
    return result
