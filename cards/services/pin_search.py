"""The Advanced Search by PIN Code: who may, within which cards, audited (docs/reliability.md,
"No PIN oracle")."""

from dataclasses import dataclass

from django.db import transaction

from cards import pins
from cards.events import PinsChecked, pins_checked_event
from cards.exceptions import CardPermissionDenied
from cards.filters import pin_shape_error
from cards.selectors import cards_visible_to
from cards.services.scope import pin_search_refusal

NOT_A_PIN = "This is not a valid PIN: please check the code."


@dataclass(frozen=True)
class PinSearch:
    digests: list[bytes]
    """The PIN's digest under every key: what the search keeps (cards.filters.remember_digests)."""
    error: str | None
    """Why the typed code cannot be searched for, or None."""


@transaction.atomic
def card_pin_search(*, typed: str, actor, ip_address: str | None) -> PinSearch:
    """Check a PIN typed into the Advanced Search against the cards `actor` sees.

    Refused (CardPermissionDenied, field "pin") without `cards.view_pin`. A typed code that has
    not the shape of a PIN is refused without a lookup; any other lookup is a `pins_checked`
    event, counted by the global failure budget. A PIN whose Luhn digit fails is most likely
    mistyped, but imported cards may carry PINs without one: it is refused only when none of
    the actor's cards has it.
    """
    refusal = pin_search_refusal(actor)
    if refusal:
        raise CardPermissionDenied(refusal, field="pin")
    pin = pins.normalize_pin(typed)
    if pin_shape_error(pin):
        return PinSearch(digests=[], error=NOT_A_PIN)
    digests = pins.pin_digests(pin)
    matched = cards_visible_to(actor).filter(pin_digest__in=digests).order_by().count()
    pins_checked_event(
        what=PinsChecked.SEARCH, checked=1, matched=matched, actor=actor, ip_address=ip_address
    )
    if not matched and not pins.luhn_valid(pin):
        return PinSearch(digests=[], error=NOT_A_PIN)
    return PinSearch(digests=digests, error=None)
