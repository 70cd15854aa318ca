"""A permitted operator reads a card's PIN; every reveal is audited."""

from cards import pins
from cards.events import card_pin_revealed_event
from cards.exceptions import CardPermissionDenied
from cards.models import TopUpCard
from subscribers.selectors import staff_reseller


def card_pin_reveal(*, card: TopUpCard, actor, ip_address: str | None = None) -> str:
    """The card's PIN for a permitted operator; every reveal is an audit event."""
    if actor is None or not actor.has_perm("cards.view_pin"):
        raise CardPermissionDenied("You are not allowed to see PINs.")
    scoped = staff_reseller(actor)
    if scoped is not None and card.reseller_id != scoped.pk:
        raise CardPermissionDenied("You are not allowed to see this card.")
    pin = pins.decrypt_pin(card.pin_encrypted)
    card_pin_revealed_event(card=card, actor=actor, ip_address=ip_address)
    return pin
