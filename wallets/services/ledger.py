"""The ledger: `balance_apply` is the only place a balance amount changes (docs/domain.md).

Locking order, everywhere: a card (in the cards app) before any balance; a balance before the
aggregated balances above it, walking up the `parent` chain. Hierarchies are trees, so this order
never forms a cycle; primary-key order would not do here, because a top-up locks the balance it
credits before it can know which ancestors an EndTime will move.
"""

from decimal import Decimal

from django.db import transaction
from django.utils.translation import gettext_noop

from ..exceptions import BadData
from ..models import Balance, BalanceInterval, Channel, LedgerEntry
from .checks import AMOUNT_LIMIT, check_precision


def lock_balance(balance_id: int) -> Balance:
    # of=("self",): lock the balance row only, not the template every balance shares (a lock on
    # the joined template would serialize all top-ups of that template).
    return (
        Balance.objects.select_for_update(of=("self",))
        .select_related("template")
        .get(pk=balance_id)
    )


def lock_with_ancestors(balance_id: int) -> list[Balance]:
    """Lock a balance, then each aggregated balance above it, bottom-up (see the module doc)."""
    locked: list[Balance] = []
    seen: set[int] = set()
    next_id: int | None = balance_id
    while next_id is not None and next_id not in seen:
        seen.add(next_id)
        balance = lock_balance(next_id)
        locked.append(balance)
        next_id = balance.parent_id
    return locked


def apply_to_locked(
    *,
    locked: Balance,
    amount,
    kind: str,
    actor,
    channel: str,
    voucher: str,
    reason: str,
    request_id: str,
    interval_id: int | None,
    reverses: LedgerEntry | None,
) -> LedgerEntry:
    """Change the amount of a balance this transaction has locked, and write its ledger entry.

    The step every amount change shares; the services that lock the balance themselves (to read
    its validity or an entry under the same lock) call it inside their own transaction, without
    a savepoint or a second lock. Callers validate the business rules; this function guarantees
    the ledger invariant: the amount of a balance (and of an interval) always equals the sum of
    its entries.
    """
    assert transaction.get_connection().in_atomic_block, "call balance_apply instead"
    amount = Decimal(amount)
    if amount == 0:
        raise BadData("Amount must not be zero.", rule="T1")
    check_precision(locked, amount)
    if locked.amount + amount < 0:
        raise BadData("Insufficient balance: the amount would become negative.")
    if locked.amount + amount >= AMOUNT_LIMIT:
        # Marked: a panel redemption shows it translated (docs/panel.md, "Languages").
        raise BadData(gettext_noop("The balance would exceed the largest amount it can hold."))
    interval = None
    if interval_id is not None:
        interval = BalanceInterval.objects.select_for_update().get(pk=interval_id, balance=locked)
        if interval.amount + amount < 0:
            raise BadData("Insufficient balance in the interval.")
        interval.amount += amount
        interval.save(update_fields=["amount"])
    locked.amount += amount
    locked.save(update_fields=["amount"])
    return LedgerEntry.objects.create(
        balance=locked,
        interval=interval,
        amount=amount,
        kind=kind,
        channel=channel,
        voucher=voucher,
        reason=reason,
        actor=actor,
        request_id=request_id,
        reverses=reverses,
    )


@transaction.atomic
def balance_apply(
    *,
    balance_id: int,
    amount: Decimal,
    kind: str,
    actor=None,
    channel: str = Channel.SYSTEM,
    voucher: str = "",
    reason: str = "",
    request_id: str = "",
    interval_id: int | None = None,
    reverses: LedgerEntry | None = None,
) -> LedgerEntry:
    """Lock the balance, change its amount by `amount` (in `interval_id` too), write the entry."""
    return apply_to_locked(
        locked=lock_balance(balance_id),
        amount=amount,
        kind=kind,
        actor=actor,
        channel=channel,
        voucher=voucher,
        reason=reason,
        request_id=request_id,
        interval_id=interval_id,
        reverses=reverses,
    )
