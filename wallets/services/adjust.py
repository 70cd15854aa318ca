"""Adjustments: an operator or partner credits or debits a balance and/or changes its validity,
and with an Idempotency-Key a retry returns the original outcome without a second change."""

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from ..exceptions import BadData, NotSupported
from ..models import (
    Balance,
    BalanceEvent,
    BalanceEventKind,
    BalanceKind,
    Channel,
    IdempotencyKey,
    LedgerEntry,
    LedgerKind,
)
from .checks import check_precision, check_reason_text
from .intervals import credit_interval_id
from .ledger import apply_to_locked, lock_balance
from .validity import TimeValue, balance_change_validity


class AdjustType:
    CREDIT = 1
    DEBIT = 2
    CHOICES = ((CREDIT, "Credit"), (DEBIT, "Debit"))


@dataclass(frozen=True)
class AdjustResult:
    balance: Balance
    entry: LedgerEntry | None
    changed: tuple[Balance, ...] = ()
    replayed: bool = False


def request_fingerprint(**fields) -> str:
    """A stable digest of what was asked, to tell a retry from a different request."""
    canonical = json.dumps({k: str(v) for k, v in fields.items()}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _idempotent_replay(actor, key: str, fingerprint: str) -> AdjustResult | None:
    stored = (
        IdempotencyKey.objects.select_related("ledger_entry__balance")
        .filter(user=actor, key=key)
        .first()
    )
    if stored is None:
        return None
    if stored.fingerprint != fingerprint:
        raise BadData("This Idempotency-Key was already used for a different request.")
    entry = stored.ledger_entry
    balance = entry.balance if entry else None
    return AdjustResult(balance=balance, entry=entry, replayed=True)


def check_adjustment(
    balance: Balance, *, adjust_type, amount: Decimal, reason: str, has_time_change: bool
) -> Decimal:
    if adjust_type not in (AdjustType.CREDIT, AdjustType.DEBIT):
        raise BadData("AdjustType must be 1 (credit) or 2 (debit).")
    amount = Decimal(amount)
    if not amount.is_finite() or amount < 0 or (amount == 0 and not has_time_change):
        raise BadData("Amount must be greater than zero.")
    check_reason_text(reason, required="A reason is required for an adjustment.")
    if balance.template.kind == BalanceKind.METER:
        raise NotSupported("An amount meter cannot be adjusted.")
    check_precision(balance, amount)
    return amount


def balance_adjust(
    *,
    balance: Balance,
    adjust_type: int,
    amount: Decimal,
    reason: str,
    start_time: TimeValue | None = None,
    end_time: TimeValue | None = None,
    actor=None,
    channel: str = Channel.SYSTEM,
    request_id: str = "",
    idempotency_key: str = "",
    fingerprint: str = "",
) -> AdjustResult:
    """Credit or debit a balance and/or change its validity, in one transaction.

    Never a meter. The amount follows T6 (precision) and, on a periodic balance, lands in the
    current interval. StartTime follows S1–S7, EndTime E1–E9. With an `idempotency_key`, a repeat
    of the same request by the same actor returns the original outcome without a second change:
    two concurrent ones meet at the key's unique index, and the second returns the first's.
    """
    if idempotency_key:
        if actor is None:
            raise BadData("An Idempotency-Key needs an authenticated caller.")
        replay = _idempotent_replay(actor, idempotency_key, fingerprint)
        if replay is not None:
            return replay
    try:
        with transaction.atomic():
            amount = check_adjustment(
                balance,
                adjust_type=adjust_type,
                amount=amount,
                reason=reason,
                has_time_change=start_time is not None or end_time is not None,
            )
            changed = balance_change_validity(
                balance_id=balance.pk,
                start_time=start_time,
                end_time=end_time,
                actor=actor,
                channel=channel,
                reason=reason,
                request_id=request_id,
            )
            entry = None
            if amount:
                signed = amount if adjust_type == AdjustType.CREDIT else -amount
                locked = lock_balance(balance.pk)
                entry = apply_to_locked(
                    locked=locked,
                    amount=signed,
                    kind=LedgerKind.ADJUSTMENT,
                    actor=actor,
                    channel=channel,
                    voucher="",
                    reason=reason,
                    request_id=request_id,
                    interval_id=credit_interval_id(locked, timezone.now()),
                    reverses=None,
                )
                BalanceEvent.objects.create(
                    balance=entry.balance,
                    kind=BalanceEventKind.ADJUSTMENT,
                    changes={
                        "amount": [str(entry.balance.amount - signed), str(entry.balance.amount)]
                    },
                    actor=actor,
                    channel=channel,
                    ledger_entry=entry,
                    reason=reason,
                    request_id=request_id,
                )
            if idempotency_key:
                IdempotencyKey.objects.create(
                    user=actor, key=idempotency_key, fingerprint=fingerprint, ledger_entry=entry
                )
            fresh = Balance.objects.select_related("template").get(pk=balance.pk)
            return AdjustResult(balance=fresh, entry=entry, changed=tuple(changed))
    except IntegrityError:
        if not idempotency_key:
            raise
        replay = _idempotent_replay(actor, idempotency_key, fingerprint)
        if replay is None:
            raise
        return replay
