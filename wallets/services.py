"""Every write to balances. The only place a balance amount changes is `balance_apply`."""

from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from .exceptions import BadData, NotSupported
from .models import Balance, BalanceInterval, BalanceKind, Channel, LedgerEntry, LedgerKind


def decimal_places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def check_precision(balance: Balance, amount: Decimal) -> None:
    """T6: an amount may not have more decimal places than the balance template allows."""
    if not amount.is_finite():
        raise BadData("Amount must be a number.", rule="T6")
    if decimal_places(amount) > balance.template.precision:
        raise BadData(
            f"Amount has more than {balance.template.precision} decimal places.", rule="T6"
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
) -> LedgerEntry:
    """Lock the balance (and interval), change its amount by `amount`, write the ledger entry.

    Callers validate the business rules; this function guarantees the ledger invariant:
    the amount of a balance (and of an interval) always equals the sum of its entries.
    """
    amount = Decimal(amount)
    if amount == 0:
        raise BadData("Amount must not be zero.", rule="T1")
    balance = Balance.objects.select_for_update().select_related("template").get(pk=balance_id)
    check_precision(balance, amount)
    if balance.amount + amount < 0:
        raise BadData("Insufficient balance: the amount would become negative.")
    interval = None
    if interval_id is not None:
        interval = BalanceInterval.objects.select_for_update().get(pk=interval_id, balance=balance)
        if interval.amount + amount < 0:
            raise BadData("Insufficient balance in the current interval.")
        interval.amount += amount
        interval.save(update_fields=["amount"])
    balance.amount += amount
    balance.save(update_fields=["amount"])
    return LedgerEntry.objects.create(
        balance=balance,
        interval=interval,
        amount=amount,
        kind=kind,
        channel=channel,
        voucher=voucher,
        reason=reason,
        actor=actor,
        request_id=request_id,
    )


def current_interval(balance: Balance, at=None) -> BalanceInterval | None:
    at = at or timezone.now()
    return balance.intervals.filter(start_time__lte=at, end_time__gt=at).first()


@dataclass(frozen=True)
class TopupResult:
    entry: LedgerEntry
    balance: Balance


@transaction.atomic
def balance_topup(
    *,
    balance: Balance,
    amount: Decimal,
    voucher: str,
    actor=None,
    channel: str = Channel.SYSTEM,
    kind: str = LedgerKind.TOPUP,
    request_id: str = "",
) -> TopupResult:
    """Credit a balance under the top-up rules T1–T6 (PRODUCT.md section 5)."""
    amount = Decimal(amount)
    if not amount.is_finite() or amount <= 0:
        raise BadData("Amount must be greater than zero.", rule="T1")
    if not voucher:
        raise BadData("A voucher is required to top up.", rule="T2")
    template = balance.template
    if template.kind == BalanceKind.METER:
        raise NotSupported("An amount meter cannot be topped up.", rule="T5")
    check_precision(balance, amount)
    now = timezone.now()
    interval_id = None
    if template.kind == BalanceKind.PERIODIC:
        interval = current_interval(balance, now)
        if interval is None or not balance.is_live(now):
            raise BadData("The periodic balance has no current interval.", rule="T3")
        interval_id = interval.pk
    elif not balance.is_live(now):
        raise BadData("The balance is not live (outside its start and end time).")
    # T4: the credit lands on this balance only; nothing rolls up to the aggregated balance above.
    entry = balance_apply(
        balance_id=balance.pk,
        amount=amount,
        kind=kind,
        actor=actor,
        channel=channel,
        voucher=voucher,
        request_id=request_id,
        interval_id=interval_id,
    )
    return TopupResult(entry=entry, balance=entry.balance)
