"""What the reports read of the cards' audit events (`CardEvent.changes`, written by cards only).

The keys of the payloads are declared by `cards/events.py`, the only code that writes them; the
reports name them only through its classes (`Edited`, `Deleted`).
"""

import datetime as dt

from django.db.models import (
    BigIntegerField,
    BooleanField,
    Case,
    CharField,
    DecimalField,
    F,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce, StrIndex, Substr

from cards.events import Deleted
from cards.models import CardEvent, CardEventKind

from .common import Instant

# The audit events that change what liability reads: Mass Edit's edits (expires_at, reseller) and
# blocks. A reversal's block is dated by the card's own `reversed_at`.
STATE_EVENT_KINDS = (CardEventKind.EDITED, CardEventKind.BLOCKED, CardEventKind.UNBLOCKED)


def _changed(key: str) -> KeyTextTransform:
    return KeyTextTransform(key, "changes")


def state_changes_since(as_of: dt.datetime) -> QuerySet:
    """Block, expiry and reseller changes at or after `as_of` (the (kind, created_at) index)."""
    return CardEvent.objects.filter(kind__in=STATE_EVENT_KINDS, created_at__gte=as_of)


def deleted_cards() -> QuerySet:
    """One row per card deleted by Mass Edit (its `deleted` audit event), annotated with the card
    as it was when it went: `amount`, `currency`, `reseller_id`, `series`, `card_created_at`,
    `expires_at` and `blocked`; the event's own `created_at` is the time of the deletion.

    Events written before created_at, series and blocked were recorded fall back to the event's
    batch for created_at and series (series also to the serial's prefix, which is the series);
    with neither (an imported card, which has no batch) the creation time is unknown (NULL: the
    reports count such a card as created before any date), and a missing `blocked` reads as not
    blocked. Amount, currency, reseller and expiry are in every deletion event.
    """
    serial_series = Substr("serial", 1, StrIndex("serial", Value("-")) - 1)
    events = CardEvent.objects.filter(kind=CardEventKind.DELETED)
    return events.alias(blocked_text=Cast(_changed(Deleted.BLOCKED), CharField())).annotate(
        amount=Cast(_changed(Deleted.AMOUNT), DecimalField(max_digits=14, decimal_places=2)),
        currency=Cast(_changed(Deleted.CURRENCY), CharField()),
        reseller_id=Cast(_changed(Deleted.RESELLER), BigIntegerField()),
        series=Coalesce(
            Cast(_changed(Deleted.SERIES), CharField()),
            F("batch__series"),
            serial_series,
            output_field=CharField(),
        ),
        card_created_at=Coalesce(
            Instant(_changed(Deleted.CREATED_AT)), Instant(F("batch__created_at"))
        ),
        expires_at=Instant(_changed(Deleted.EXPIRES_AT)),
        # jsonb has true/false, SQLite's JSON 1/0.
        blocked=Case(
            When(Q(blocked_text__in=("true", "1")), then=Value(True)),
            default=Value(False),
            output_field=BooleanField(),
        ),
    )
