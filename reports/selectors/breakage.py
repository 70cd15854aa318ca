"""Breakage: the face value of cards that expired unredeemed, booked in the period of the expiry
and never moved afterwards; expiries moved later are movements of their own period
(reports/README.md, "Breakage")."""

import datetime as dt
from decimal import Decimal

from django.utils import timezone

from .common import Period, finish_period_rows
from .history.window import Kind
from .movements import PERIOD, movement_totals

BREAKAGE_BREAKDOWNS = {
    "none": (),
    "reseller": ("reseller_id",),
    "series": ("series",),
    "reseller_series": ("reseller_id", "series"),
}
BREAKAGE_KINDS = (Kind.BREAKAGE, Kind.WRITTEN_OFF, Kind.REINSTATED)


def breakage(
    *,
    period: Period,
    now: dt.datetime | None = None,
    breakdown: str = "none",
    reseller_id: int | None = None,
    currency: str = "",
    series: str = "",
) -> list[dict]:
    """Per period (up to now), currency and breakdown: `count` and `value` of the cards whose
    expiry passed unredeemed, `blocked_value` of them blocked then, `dormant_value` of them still
    dormant then (never delivered: stock that was never for sale), `written_off` (expiry moved to
    the edit's time or earlier), `reinstated` (an expired card given a later expiry) and `net`
    (value + written_off − reinstated), each under the reseller the card had then."""
    now = now or timezone.now()
    extra = BREAKAGE_BREAKDOWNS[breakdown]
    keys = (PERIOD, "currency", *extra)
    rows: dict[tuple, dict] = {}
    for total in movement_totals(
        since=period.start,
        until=min(period.end, now),
        keys=(*keys, "blocked", "dormant", "kind"),
        kinds=BREAKAGE_KINDS,
        granularity=period.granularity,
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
                **{name: Decimal(0) for name in _FIGURES},
            },
        )
        amount = total["amount"]
        if total["kind"] == Kind.BREAKAGE:
            row["count"] -= total["cards"]
            row["value"] -= amount
            if total["blocked"]:
                row["blocked_value"] -= amount
            if total["dormant"]:
                row["dormant_value"] -= amount
        elif total["kind"] == Kind.WRITTEN_OFF:
            row["written_off"] -= amount
        else:
            row["reinstated"] += amount
    for row in rows.values():
        row["net"] = row["value"] + row["written_off"] - row["reinstated"]
    kept = [row for row in rows.values() if row["count"] or any(row[f] for f in _FIGURES)]
    return finish_period_rows(kept, extra)


_FIGURES = ("value", "blocked_value", "dormant_value", "written_off", "reinstated", "net")
