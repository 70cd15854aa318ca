"""Reversal: a top-up or redemption undone by a compensating entry; the original stays."""

from django.db import transaction

from ..exceptions import AlreadyRedeemed, BadData
from ..models import BalanceEvent, BalanceEventKind, Channel, LedgerEntry, LedgerKind
from .checks import check_reason_text
from .ledger import apply_to_locked, lock_balance

REVERSIBLE_KINDS = (LedgerKind.TOPUP, LedgerKind.REDEMPTION)


@transaction.atomic
def ledger_entry_reverse(
    *, entry_id: int, reason: str, actor=None, channel: str = Channel.ADMIN
) -> LedgerEntry:
    """Undo a top-up or redemption with a compensating entry; the original stays as it was.

    The balance side only: reversing a card's redemption also blocks the card, which the cards
    app does around this call.
    """
    check_reason_text(reason, required="A reason is required to reverse an entry.")
    entry = LedgerEntry.objects.select_related("balance").get(pk=entry_id)
    if entry.kind not in REVERSIBLE_KINDS:
        raise BadData("Only a top-up or a card redemption can be reversed.")
    balance = lock_balance(entry.balance_id)
    if LedgerEntry.objects.filter(reverses=entry).exists():
        raise AlreadyRedeemed("This entry has already been reversed.")
    reversal = apply_to_locked(
        locked=balance,
        amount=-entry.amount,
        kind=LedgerKind.REVERSAL,
        actor=actor,
        channel=channel,
        voucher=entry.voucher,
        reason=reason,
        request_id="",
        interval_id=entry.interval_id,
        reverses=entry,
    )
    BalanceEvent.objects.create(
        balance=reversal.balance,
        kind=BalanceEventKind.REVERSAL,
        changes={
            "amount": [str(reversal.balance.amount + entry.amount), str(reversal.balance.amount)],
            "reverses": entry.pk,
        },
        actor=actor,
        channel=channel,
        ledger_entry=reversal,
        reason=reason,
    )
    return reversal
