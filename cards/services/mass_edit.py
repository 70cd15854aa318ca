"""Mass Edit and Delete all: every card the current search selects, in set-based statements."""

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from cards import events
from cards.exceptions import CardEditError
from cards.models import CardEvent
from cards.services.scope import check_reseller_scope
from cards.sql import selection as sql
from subscribers.models import Reseller

PRESERVE: Any = object()
"""Mass Edit's "preserve": leave the field as each card has it."""


class _ExpireNow:
    def __repr__(self) -> str:
        return "EXPIRE_NOW"


EXPIRE_NOW: Any = _ExpireNow()
"""Mass Edit's "expire now": the cards expire at the edit's own time (docs/cards.md, "Mass
Edit"). The only way to give cards an expiry that is not in the future: a date in the past is
refused, since one typo there ends a printed box of cards without a word."""

PAST_EXPIRY = (
    "Expiry Date must be in the future: a date in the past would end the cards at once. "
    "To end them on purpose, choose “expire now”."
)


def _check_expiry(expires_at) -> None:
    """Refuse an expiry that is neither PRESERVE, EXPIRE_NOW nor a time in the future."""
    if expires_at is PRESERVE or expires_at is EXPIRE_NOW:
        return
    if not isinstance(expires_at, dt.datetime) or timezone.is_naive(expires_at):
        raise CardEditError("Expiry Date must be a date and time.", field="expires_at")
    if expires_at <= timezone.now():
        raise CardEditError(PAST_EXPIRY, field="expires_at")


@dataclass(frozen=True)
class MassUpdateResult:
    selected: int
    """Cards the search selected that may change (not activated), locked for the update."""
    changed: dict[str, int]
    """Per field (expires_at, reseller, blocked): how many cards it actually changed."""


def editable_cards(cards: QuerySet) -> QuerySet:
    """The selected cards that may change: never an activated one (they are history)."""
    return cards.filter(activated_at__isnull=True).select_related(None).order_by()


def _lock_cards(cards: QuerySet) -> tuple[QuerySet, int]:
    """The selected cards locked until the commit, and their number. Every later statement of
    the edit works on exactly these rows, never on cards committed meanwhile
    (cards.sql.selection)."""
    if connection.vendor != "postgresql":
        # SQLite: the first write takes the database's write lock until the commit, so no other
        # transaction can add a card between this edit's statements.
        return cards, cards.count()
    return sql.lock_selection(cards)


@transaction.atomic
def cards_mass_update(
    *,
    cards: QuerySet,
    expires_at: dt.datetime | Any = PRESERVE,  # or EXPIRE_NOW
    reseller: Reseller | None | Any = PRESERVE,
    blocked: bool | Any = PRESERVE,
    expire_now_at: dt.datetime | None = None,
    actor,
) -> MassUpdateResult:
    """Apply Mass Edit to every card `cards` selects (not only a page), in set-based queries.

    Activated cards are never changed. Each changed field of each card is audited as a
    CardEvent (edited with old and new value; blocked / unblocked), in the same transaction.
    `expires_at` must be in the future, or EXPIRE_NOW: the moment `expire_now_at` (by default
    now; a background job passes the one it started at, so each of its chunks sets the same).
    """
    _check_expiry(expires_at)
    if reseller is not PRESERVE:
        if reseller is not None and not isinstance(reseller, Reseller):
            raise CardEditError("Company must be a reseller.", field="reseller")
        check_reseller_scope(actor=actor, reseller=reseller)
    if blocked is not PRESERVE and not isinstance(blocked, bool):
        raise CardEditError("Block must be block, unblock or preserve.", field="blocked")
    target, selected = _lock_cards(editable_cards(cards))
    changed: dict[str, int] = {}
    if not selected:
        # Nothing to change, and no statement to run: an empty selection compiles to no SQL.
        asked = {"expires_at": expires_at, "reseller": reseller, "blocked": blocked}
        changed = {field: 0 for field, value in asked.items() if value is not PRESERVE}
        return MassUpdateResult(selected=0, changed=changed)
    if expires_at is EXPIRE_NOW:
        # Only cards still running: an expired card keeps the expiry it had (moving it to now
        # would move its breakage to another period).
        expires_at = expire_now_at or timezone.now()
        touched = target.filter(expires_at__gt=expires_at)
        sql.insert_card_events(touched, event=events.expiry_edited_events(expires_at), actor=actor)
        changed["expires_at"] = touched.update(expires_at=expires_at)
    elif expires_at is not PRESERVE:
        touched = target.exclude(expires_at=expires_at)
        sql.insert_card_events(touched, event=events.expiry_edited_events(expires_at), actor=actor)
        changed["expires_at"] = touched.update(expires_at=expires_at)
    if reseller is not PRESERVE:
        touched = target.exclude(reseller=reseller) if reseller else target.exclude(reseller=None)
        sql.insert_card_events(touched, event=events.reseller_edited_events(reseller), actor=actor)
        changed["reseller"] = touched.update(reseller=reseller)
    if blocked is not PRESERVE:
        touched = target.filter(blocked=not blocked)
        sql.insert_card_events(touched, event=events.block_events(blocked), actor=actor)
        changed["blocked"] = touched.update(blocked=blocked)
    return MassUpdateResult(selected=selected, changed=changed)


@transaction.atomic
def cards_mass_delete(*, cards: QuerySet, actor) -> int:
    """Delete every card `cards` selects except activated ones; returns how many went.

    Each deletion is audited with the serial and what the reports need to count the card on the
    days before its deletion (`cards.events.Deleted`), so the history outlives the card; the
    card's earlier events keep their serial and lose only the link.
    """
    target, selected = _lock_cards(editable_cards(cards))
    if not selected:
        return 0
    sql.insert_card_events(target, event=events.deleted_events(), actor=actor)
    CardEvent.objects.filter(card__in=target.values("pk")).update(card=None)
    # One DELETE … WHERE: no per-row collection (nothing but the events points at a card that
    # was never activated, and those were just unlinked).
    return target._raw_delete(target.db)
