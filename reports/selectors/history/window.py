"""The vocabulary of the event-sourced view: the kinds of movement, what a movement row is grouped
by, the window of instants asked, the totals the movements add up into."""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Q, QuerySet

from cards.models import CardEvent

from ..audit import STATE_EVENT_KINDS


class Kind:
    ISSUED = "issued"
    REDEEMED = "redeemed"
    REVERSED = "reversed"
    BREAKAGE = "breakage"
    WRITTEN_OFF = "written_off"
    REINSTATED = "reinstated"
    DELETED = "deleted"
    MOVED = "moved"
    BLOCKED = "blocked"
    UNBLOCKED = "unblocked"
    DELIVERED = "delivered"
    ALL = (
        ISSUED,
        REDEEMED,
        REVERSED,
        BREAKAGE,
        WRITTEN_OFF,
        REINSTATED,
        DELETED,
        MOVED,
        BLOCKED,
        UNBLOCKED,
        DELIVERED,
    )


KEYS = ("day", "currency", "reseller_id", "series", "blocked", "dormant", "kind")
"""What a movement row is grouped by; each row also has `cards` and `amount` (signed)."""


@dataclass(frozen=True)
class Window:
    """Movements at instants in [since, until); `since` None: from the beginning."""

    since: dt.datetime | None
    until: dt.datetime

    def holds(self, field: str) -> Q:
        condition = Q(**{f"{field}__lt": self.until})
        if self.since is not None:
            condition &= Q(**{f"{field}__gte": self.since})
        return condition

    def contains(self, instant: dt.datetime) -> bool:
        return (self.since is None or instant >= self.since) and instant < self.until


class Totals:
    """Movement rows added up by KEYS (a loop over groups and replayed cards, never all cards)."""

    def __init__(self) -> None:
        self.sums: dict[tuple, list] = defaultdict(lambda: [0, Decimal(0)])

    def add(self, key: tuple, cards: int, amount: Decimal) -> None:
        total = self.sums[key]
        total[0] += cards
        total[1] += amount

    def rows(self) -> list[dict]:
        return [
            {**dict(zip(KEYS, key, strict=True)), "cards": cards, "amount": amount}
            for key, (cards, amount) in self.sums.items()
            if cards or amount
        ]


def state_events(window: Window) -> QuerySet:
    events = CardEvent.objects.filter(kind__in=STATE_EVENT_KINDS)
    if window.since is not None:
        events = events.filter(created_at__gte=window.since)
    return events
