"""Reverse a card redemption or a top-up: a compensating entry, the card blocked, audited."""

from django.db import transaction

from cards.events import card_reversed_event
from cards.models import TopUpCard
from wallets.exceptions import AlreadyRedeemed, BadData
from wallets.models import Channel, LedgerEntry
from wallets.services.reversal import ledger_entry_reverse


@transaction.atomic
def card_reverse(*, card_id: int, reason: str, actor=None) -> LedgerEntry:
    """Reverse a redeemed card: compensating ledger entry, card marked reversed and blocked."""
    card = TopUpCard.objects.select_for_update().get(pk=card_id)
    if card.reversed_at is not None:
        raise AlreadyRedeemed("This card's redemption has already been reversed.")
    if card.activated_at is None or card.ledger_entry_id is None:
        raise BadData("Only a redeemed card can be reversed.")
    reversal = ledger_entry_reverse(
        entry_id=card.ledger_entry_id, reason=reason, actor=actor, channel=Channel.ADMIN
    )
    card.reversed_at = reversal.created_at
    card.blocked = True
    card.save(update_fields=["reversed_at", "blocked"])
    card_reversed_event(card=card, reason=reason, reversal=reversal, actor=actor)
    return reversal


def entry_reverse(*, entry_id: int, reason: str, actor=None) -> LedgerEntry:
    """Reverse a top-up or redemption entry; a card's redemption also blocks the card."""
    card_id = TopUpCard.objects.filter(ledger_entry_id=entry_id).values_list("pk", flat=True)
    card_id = card_id.first()
    if card_id is not None:
        return card_reverse(card_id=card_id, reason=reason, actor=actor)
    return ledger_entry_reverse(entry_id=entry_id, reason=reason, actor=actor)
