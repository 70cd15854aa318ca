"""One card walked through the window: its state rebuilt from its row and its changes, and each
instant at which it enters or leaves liability, or changes reseller or a flag while in it, added
up as a movement (docs/reports.md, "Rules at one instant")."""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.utils import timezone

from cards.events import Edited
from cards.models.events import CardEventKind

from .window import Kind, Totals, Window

_FLAG = Edited.BLOCKED  # block events say it by their kind, not in a field of their own
_DORMANT = "dormant"  # the `delivered` event's kind says it: the card was dormant until then
UNKNOWN_CREATION = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
"""The creation time of a deleted card whose event does not say it (an imported card deleted
before deletion events recorded it): before any date a report asks about."""


def parse_instant(value) -> dt.datetime | None:
    """A datetime as the database wrote it into JSON (cards.events.Deleted): ISO with an offset
    on PostgreSQL, UTC text without one on SQLite."""
    if value is None or isinstance(value, dt.datetime):
        return value
    parsed = dt.datetime.fromisoformat(str(value))
    return parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=dt.UTC)


def flag_value(value) -> bool:
    return value in (True, 1, "true", "1")


@dataclass
class Change:
    at: dt.datetime
    order: int
    field: str
    old: object


@dataclass
class Card:
    """A card as its row (or deletion event) has it now, and its changes since the window."""

    amount: Decimal
    currency: str
    series: str
    reseller_id: int | None
    expires_at: dt.datetime
    blocked: bool
    created_at: dt.datetime | None
    dormant: bool = False
    activated_at: dt.datetime | None = None
    reversed_at: dt.datetime | None = None
    deleted_at: dt.datetime | None = None
    changes: list[Change] | None = None


def change_of(event: dict) -> Change:
    if event["kind"] == CardEventKind.EDITED:
        field = event["changes"].get(Edited.FIELD)
        old = event["changes"].get(Edited.OLD)
        if field == Edited.EXPIRES_AT:
            old = parse_instant(old)
    elif event["kind"] == CardEventKind.DELIVERED:
        field, old = _DORMANT, True
    else:
        # Mass Edit writes a block event only when the flag flips: the kind says what it was.
        field, old = _FLAG, event["kind"] == CardEventKind.UNBLOCKED
    return Change(at=event["created_at"], order=event["id"], field=field, old=old)


_SAME = object()


def replay(card: Card, window: Window, totals: Totals) -> None:
    """Walk the card through the window and add its movements to `totals`."""
    changes = sorted(card.changes or [], key=lambda c: (c.at, c.order))
    since = window.since
    reversed_before = (
        card.reversed_at is not None and since is not None and card.reversed_at < since
    )
    if card.reversed_at is not None and not reversed_before:
        # A reversal blocks the card (cards.events.Reversed): the flag was off before it.
        changes.append(Change(at=card.reversed_at, order=-1, field=_FLAG, old=False))
        changes.sort(key=lambda c: (c.at, c.order))
    now = {
        Edited.EXPIRES_AT: card.expires_at,
        Edited.RESELLER: card.reseller_id,
        _FLAG: card.blocked,
        _DORMANT: card.dormant,
    }
    # The value each change sets: the `old` of the next change of that field, or the value now.
    sets: list[object] = [None] * len(changes)
    following = dict(now)
    for index in range(len(changes) - 1, -1, -1):
        sets[index] = following.get(changes[index].field)
        following[changes[index].field] = changes[index].old
    state = following  # the values before the first change: those at the window's start
    created = card.created_at or UNKNOWN_CREATION
    exists = since is not None and created < since
    if card.deleted_at is not None and since is not None and card.deleted_at < since:
        return
    redeemed_before = (
        card.activated_at is not None and since is not None and card.activated_at < since
    )
    owed_since = since
    live = (
        exists
        and (not redeemed_before or reversed_before)
        and since is not None
        and state[Edited.EXPIRES_AT] >= since
    )

    def move(at, kind, sign, reseller=_SAME, blocked=None, dormant=None):
        key = (
            timezone.localtime(at).date(),
            card.currency,
            state[Edited.RESELLER] if reseller is _SAME else reseller,
            card.series,
            bool(state[_FLAG] if blocked is None else blocked),
            bool(state[_DORMANT] if dormant is None else dormant),
            kind,
        )
        totals.add(key, sign, sign * card.amount)

    points: list[tuple[dt.datetime, int, int, str]] = []
    if not exists and (since is None or created >= since):
        points.append((created, 0, 0, "create"))
    if card.activated_at is not None and not redeemed_before:
        points.append((card.activated_at, 2, 0, "redeem"))
    for index, change in enumerate(changes):
        points.append((change.at, 2, index + 1, "change"))
    if card.reversed_at is not None and not reversed_before:
        # After the redemption, before the reversal's own flag change at the same instant.
        points.append((card.reversed_at, 2, 0, "reverse"))
    if card.deleted_at is not None:
        points.append((card.deleted_at, 3, 0, "delete"))
    points.sort(key=lambda p: (p[0], p[1], p[2], p[3] == "change"))
    redeemed = redeemed_before and not reversed_before
    redemption_moved = redeemed_before  # a redemption before the window left liability then

    for at, _rank, index, action in points:
        if at >= window.until:
            break
        if live and state[Edited.EXPIRES_AT] <= at:
            move(max(state[Edited.EXPIRES_AT], owed_since), Kind.BREAKAGE, -1)
            live = False
        if action == "create":
            exists = True
            move(at, Kind.ISSUED, 1)
            live, owed_since = True, at
        elif action == "redeem":
            if live:
                move(at, Kind.REDEEMED, -1)
                live = False
                redemption_moved = True
            redeemed = True
        elif action == "reverse":
            redeemed = False
            state[_FLAG] = True  # the reversal blocks the card
            if redemption_moved:
                move(at, Kind.REVERSED, 1)
                live, owed_since = True, at
        elif action == "change":
            change = changes[index - 1]
            new = sets[index - 1]
            if change.field == Edited.EXPIRES_AT:
                if live and new <= at:
                    move(at, Kind.WRITTEN_OFF, -1)
                    live = False
                elif not live and exists and not redeemed and new > at >= state[change.field]:
                    state[change.field] = new
                    move(at, Kind.REINSTATED, 1)
                    live, owed_since = True, at
            elif change.field == Edited.RESELLER:
                if live and new != state[change.field]:
                    move(at, Kind.MOVED, -1)
                    move(at, Kind.MOVED, 1, reseller=new)
            elif change.field == _FLAG and change.order != -1:
                if live and bool(new) != bool(state[_FLAG]):
                    kind = Kind.BLOCKED if new else Kind.UNBLOCKED
                    move(at, kind, -1)
                    move(at, kind, 1, blocked=new)
            elif change.field == _DORMANT:
                if live and state[_DORMANT] and not new:
                    move(at, Kind.DELIVERED, -1)
                    move(at, Kind.DELIVERED, 1, dormant=False)
            state[change.field] = new
        elif action == "delete":
            if live:
                move(at, Kind.DELETED, -1)
                live = False
            exists = False
        if live and state[Edited.EXPIRES_AT] <= at:
            move(at, Kind.BREAKAGE, -1)
            live = False
    if live and state[Edited.EXPIRES_AT] < window.until:
        move(max(state[Edited.EXPIRES_AT], owed_since), Kind.BREAKAGE, -1)
