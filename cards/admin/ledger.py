"""The ledger entry's admin, replaced so that "Reverse..." of a card's redemption also blocks the
card: the wallets app does not know about cards, so the cards app registers the subclass."""

from django.contrib import admin
from django.utils.html import format_html

from cards.models import TopUpCard
from cards.services.reversal import entry_reverse
from wallets.admin import LedgerEntryAdmin
from wallets.models import LedgerEntry

admin.site.unregister(LedgerEntry)


@admin.register(LedgerEntry)
class CardLedgerEntryAdmin(LedgerEntryAdmin):
    def reverse_entry(self, *, entry: LedgerEntry, reason: str, actor) -> LedgerEntry:
        return entry_reverse(entry_id=entry.pk, reason=reason, actor=actor)

    def reverse_consequence(self, entry: LedgerEntry) -> str:
        card = TopUpCard.objects.filter(ledger_entry=entry).first()
        if card is None:
            return ""
        return format_html(
            "The card <strong>{}</strong> will be marked reversed and blocked.", card.serial
        )
