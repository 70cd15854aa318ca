"""Dormant until delivered (docs/cards.md): recording a delivered box wakes exactly the dormant
cards of its serial range, each with a `delivered` event, in one transaction."""

from django.db import connection, transaction

from cards.events import delivered_events
from cards.exceptions import DeliveryError
from cards.models import CardDelivery
from cards.models.formats import MAX_CARD_NUMBER, SERIES_FORMAT, SERIES_MESSAGE
from cards.selectors import cards_visible_to
from cards.services.scope import series_owner
from cards.sql import selection as sql
from common.formats import count_text


def dormant_in_range(*, series: str, first_number: int, last_number: int, actor):
    """The dormant cards of the range that `actor` sees (a redeemed card is never dormant)."""
    return cards_visible_to(actor).filter(
        series=series,
        number__gte=first_number,
        number__lte=last_number,
        dormant=True,
        activated_at__isnull=True,
    )


def delivery_check(*, series, first_number, last_number, reference) -> str:
    """The request's own checks; the reference, trimmed."""
    if not isinstance(series, str) or not SERIES_FORMAT.fullmatch(series):
        raise DeliveryError(SERIES_MESSAGE, field="series")
    if not (
        isinstance(first_number, int)
        and isinstance(last_number, int)
        and 1 <= first_number <= last_number <= MAX_CARD_NUMBER
    ):
        raise DeliveryError("Give the box's serial range, the first one first.", field="first")
    reference = (reference or "").strip()
    if not reference:
        raise DeliveryError(
            "Name the box (its label or the delivery note's number).", field="reference"
        )
    return reference


@transaction.atomic
def cards_deliver(
    *,
    series: str,
    first_number: int,
    last_number: int,
    reference: str,
    expected: int | None = None,
    actor,
) -> CardDelivery:
    """Wake the dormant cards of `series` `first_number`…`last_number` that `actor` sees.

    `expected` is the count the operator confirmed: when the range now holds another number of
    dormant cards, nothing changes and the operator confirms again."""
    reference = delivery_check(
        series=series, first_number=first_number, last_number=last_number, reference=reference
    )
    cards = dormant_in_range(
        series=series, first_number=first_number, last_number=last_number, actor=actor
    )
    if connection.vendor == "postgresql":
        # Locked in primary-key order, then changed by id: a card redeemed or delivered
        # meanwhile by someone else is not touched twice (cards.sql.selection).
        cards, count = sql.lock_selection(cards)
    else:
        count = cards.count()
    if count == 0:
        raise DeliveryError("No dormant card in this range: nothing to wake.", field="first")
    if expected is not None and count != expected:
        raise DeliveryError(
            f"The range now holds {count_text(count, 'dormant card')}, not {expected:,}: "
            "check the box and confirm again.",
            field="first",
        )
    owner = series_owner(series)
    delivery = CardDelivery.objects.create(
        series=series,
        first_number=first_number,
        last_number=last_number,
        reference=reference[:100],
        woken=count,
        reseller_id=owner.reseller_id if owner is not None else None,
        delivered_by=actor,
    )
    sql.insert_card_events(cards, event=delivered_events(delivery), actor=actor)
    cards.update(dormant=False)
    return delivery
