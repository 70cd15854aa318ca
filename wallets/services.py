"""Every write to balances. The only place a balance amount changes is `balance_apply`.

Locking order, everywhere: a card (cards.services) before any balance; a balance before the
aggregated balances above it, walking up the `parent` chain. Hierarchies are trees, so this order
never forms a cycle; primary-key order would not do here, because a top-up locks the balance it
credits before it can know which ancestors an EndTime will move.
"""

import datetime as dt
import hashlib
import json
import unicodedata
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from .durations import RelativeTime
from .exceptions import AlreadyRedeemed, BadData, NotSupported
from .models import (
    AMOUNT_DIGITS,
    AMOUNT_PLACES,
    ApiClient,
    Balance,
    BalanceEvent,
    BalanceEventKind,
    BalanceInterval,
    BalanceKind,
    Channel,
    ExternalVoucher,
    IdempotencyKey,
    LedgerEntry,
    LedgerKind,
)

TimeValue = dt.datetime | RelativeTime
# A balance amount has AMOUNT_DIGITS digits, AMOUNT_PLACES of them decimals.
AMOUNT_LIMIT = Decimal(10) ** (AMOUNT_DIGITS - AMOUNT_PLACES)
TIME_KINDS = (BalanceKind.SIMPLE, BalanceKind.PERIODIC)
MAX_VOUCHER_LENGTH = 64
MAX_REASON_LENGTH = 255


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


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


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
    """Lock the balance (and interval), change its amount by `amount`, write the ledger entry.

    Callers validate the business rules; this function guarantees the ledger invariant:
    the amount of a balance (and of an interval) always equals the sum of its entries.
    """
    return _apply(
        balance_id=balance_id,
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


def _lock(balance_id: int) -> Balance:
    # of=("self",): lock the balance row only, not the template every balance shares (a lock on
    # the joined template would serialize all top-ups of that template).
    return (
        Balance.objects.select_for_update(of=("self",))
        .select_related("template")
        .get(pk=balance_id)
    )


def _apply(
    *,
    amount,
    kind,
    actor,
    channel,
    voucher,
    reason,
    request_id,
    interval_id,
    reverses,
    balance_id: int | None = None,
    locked: Balance | None = None,
) -> LedgerEntry:
    """`balance_apply` for callers already inside their own atomic block (saves a savepoint).

    `locked`: the balance, when the caller has already locked it in this transaction.
    """
    assert transaction.get_connection().in_atomic_block, "call balance_apply instead"
    amount = Decimal(amount)
    if amount == 0:
        raise BadData("Amount must not be zero.", rule="T1")
    balance = locked if locked is not None else _lock(balance_id)
    check_precision(balance, amount)
    if balance.amount + amount < 0:
        raise BadData("Insufficient balance: the amount would become negative.")
    if balance.amount + amount >= AMOUNT_LIMIT:
        raise BadData("The balance would exceed the largest amount it can hold.")
    interval = None
    if interval_id is not None:
        interval = BalanceInterval.objects.select_for_update().get(pk=interval_id, balance=balance)
        if interval.amount + amount < 0:
            raise BadData("Insufficient balance in the interval.")
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
        reverses=reverses,
    )


def current_interval(balance: Balance, at=None) -> BalanceInterval | None:
    at = at or timezone.now()
    return balance.intervals.filter(start_time__lte=at, end_time__gt=at).first()


def _record(balance: Balance, kind: str, changes: dict, **fields) -> BalanceEvent:
    return BalanceEvent.objects.create(balance=balance, kind=kind, changes=changes, **fields)


def _lock_with_ancestors(balance_id: int) -> list[Balance]:
    """Lock a balance, then each aggregated balance above it, bottom-up (see the module doc)."""
    locked: list[Balance] = []
    seen: set[int] = set()
    next_id: int | None = balance_id
    while next_id is not None and next_id not in seen:
        seen.add(next_id)
        balance = _lock(next_id)
        locked.append(balance)
        next_id = balance.parent_id
    return locked


def _is_aggregated(balance: Balance) -> bool:
    """Part of an aggregation hierarchy: it has a balance above it or balances below it."""
    return balance.parent_id is not None or balance.children.exists()


def _credit_interval_id(balance: Balance, now: dt.datetime, *, rule: str) -> int | None:
    """T3: a periodic balance is credited in its current interval only."""
    if balance.template.kind != BalanceKind.PERIODIC:
        return None
    interval = current_interval(balance, now)
    if interval is None:
        raise BadData("The periodic balance has no current interval.", rule=rule)
    return interval.pk


# --- Validity: start time (S1–S7) and end time (E1–E9) --------------------------------------


def check_start_time(balance: Balance, start_time: TimeValue, *, now: dt.datetime) -> dt.datetime:
    """Rules S1, S3, S4, S5, S7 for moving `balance`'s start; returns the new start."""
    template = balance.template
    if template.kind not in TIME_KINDS:
        raise BadData("Only simple and periodic balances can change their start time.", rule="S1")
    if template.is_private:
        raise BadData("A private balance's start time cannot change.", rule="S7")
    if not isinstance(start_time, dt.datetime):
        raise BadData("StartTime must be an absolute date and time.", rule="S4")
    if start_time >= balance.start_time:
        raise BadData("The start time can only move earlier than the configured start.", rule="S3")
    expired = balance.end_time is not None and balance.end_time <= now
    if expired and template.kind == BalanceKind.PERIODIC:
        raise BadData("An expired periodic balance cannot change its start time.", rule="S5")
    return start_time


@transaction.atomic
def balance_change_start(
    *,
    balance_id: int,
    start_time: TimeValue,
    actor=None,
    channel: str = Channel.SYSTEM,
    reason: str = "",
    request_id: str = "",
) -> list[Balance]:
    """Move a balance's start earlier (S1–S7). Returns every balance that changed.

    S2: a periodic balance moves as a whole; its intervals are kept as they are.
    S6: each aggregated balance above it whose start is later moves to the new start too.
    """
    now = timezone.now()
    balance, *ancestors = _lock_with_ancestors(balance_id)
    new_start = check_start_time(balance, start_time, now=now)
    changed = []
    for target in [balance, *(a for a in ancestors if a.start_time > new_start)]:
        old = target.start_time
        target.start_time = new_start
        target.save(update_fields=["start_time"])
        changes = {"start_time": [_iso(old), _iso(new_start)]}
        if target is not balance:
            changes["propagated_from"] = balance.pk
        _record(
            target,
            BalanceEventKind.START_TIME,
            changes,
            actor=actor,
            channel=channel,
            reason=reason,
            request_id=request_id,
        )
        changed.append(target)
    return changed


def check_end_time(
    balance: Balance, end_time: TimeValue, *, now: dt.datetime, via_topup: bool, aggregated: bool
) -> dt.datetime:
    """Rules E1, E2, E4–E7, E9 for a new end of `balance`; returns the new end."""
    template = balance.template
    if template.kind not in TIME_KINDS:
        raise BadData("Only simple and periodic balances can change their end time.", rule="E2")
    if not template.end_adjust_allowed:
        raise BadData("This balance's template does not allow end time adjustment.", rule="E1")
    if template.is_private and not via_topup:
        raise BadData("A private balance's end time can change only through a top-up.", rule="E9")
    relative = isinstance(end_time, RelativeTime)
    if relative:
        if balance.end_time is None:
            raise BadData(
                "The balance has no end time to count from: give an absolute EndTime.", rule="E7"
            )
        try:
            new_end = end_time.after(balance.end_time)
        except OverflowError:
            raise BadData("EndTime is out of range.", rule="E7") from None
    else:
        new_end = end_time
    if new_end <= balance.start_time:
        raise BadData("The end time must be later than the balance's start time.", rule="E4")
    if new_end <= now:
        if relative:
            raise BadData("A relative EndTime cannot set the end in the past.", rule="E7")
        if aggregated:
            raise BadData(
                "An aggregated balance's end time can be extended only into the future.",
                rule="E6",
            )
        if not settings.ALLOW_END_TIME_IN_PAST:
            raise BadData("The end time must be later than now.", rule="E4")
    return new_end


@transaction.atomic
def balance_change_end(
    *,
    balance_id: int,
    end_time: TimeValue,
    via_topup: bool = False,
    actor=None,
    channel: str = Channel.SYSTEM,
    reason: str = "",
    request_id: str = "",
) -> list[Balance]:
    """Change a balance's end (E1–E9). Returns every balance that changed.

    E3: a periodic balance changes as a whole; its intervals are kept as they are.
    E8: each aggregated balance above it whose end is earlier than the new end is extended to it.
    """
    now = timezone.now()
    balance, *ancestors = _lock_with_ancestors(balance_id)
    new_end = check_end_time(
        balance,
        end_time,
        now=now,
        via_topup=via_topup,
        aggregated=bool(ancestors) or _is_aggregated(balance),
    )
    targets = [balance]
    if balance.end_time is not None and new_end > balance.end_time:  # extending (E8)
        targets += [a for a in ancestors if a.end_time is not None and a.end_time < new_end]
    for target in targets:
        old = target.end_time
        target.end_time = new_end
        target.save(update_fields=["end_time"])
        changes = {"end_time": [_iso(old), _iso(new_end)]}
        if isinstance(end_time, RelativeTime):
            changes["relative"] = str(end_time)
        if target is not balance:
            changes["propagated_from"] = balance.pk
        _record(
            target,
            BalanceEventKind.END_TIME,
            changes,
            actor=actor,
            channel=channel,
            reason=reason,
            request_id=request_id,
        )
    return targets


@transaction.atomic
def balance_change_validity(
    *,
    balance_id: int,
    start_time: TimeValue | None = None,
    end_time: TimeValue | None = None,
    actor=None,
    channel: str = Channel.SYSTEM,
    reason: str = "",
    request_id: str = "",
) -> list[Balance]:
    """Change the start and/or the end of a balance in one transaction (S1–S7, E1–E8)."""
    check_reason_text(reason)
    changed: list[Balance] = []
    if start_time is not None:
        changed += balance_change_start(
            balance_id=balance_id,
            start_time=start_time,
            actor=actor,
            channel=channel,
            reason=reason,
            request_id=request_id,
        )
    if end_time is not None:
        changed += balance_change_end(
            balance_id=balance_id,
            end_time=end_time,
            actor=actor,
            channel=channel,
            reason=reason,
            request_id=request_id,
        )
    return changed


# --- Top-up (T1–T7) -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TopupResult:
    entry: LedgerEntry
    balance: Balance
    replayed: bool = False


def check_topup(
    balance: Balance, *, amount: Decimal, voucher: str, start_time: TimeValue | None = None
) -> Decimal:
    """Rules T1, T2, T5, T6, T7 that need no lock: cheap checks before touching anything."""
    if start_time is not None:
        raise NotSupported("A top-up cannot change the start time.", rule="T7")
    amount = Decimal(amount)
    if not amount.is_finite() or amount <= 0:
        raise BadData("Amount must be greater than zero.", rule="T1")
    if not voucher:
        raise BadData("A voucher is required to top up.", rule="T2")
    if balance.template.kind == BalanceKind.METER:
        raise NotSupported("An amount meter cannot be topped up.", rule="T5")
    check_precision(balance, amount)
    return amount


@transaction.atomic
def balance_topup(
    *,
    balance: Balance,
    amount: Decimal,
    voucher: str,
    end_time: TimeValue | None = None,
    start_time: TimeValue | None = None,
    actor=None,
    channel: str = Channel.SYSTEM,
    kind: str = LedgerKind.TOPUP,
    request_id: str = "",
) -> TopupResult:
    """Credit a balance under the top-up rules T1–T7 (PRODUCT.md section 5).

    T4: the credit lands on this balance only; nothing rolls up to the aggregated balance above.
    T7: an EndTime changes the end under the end-time rules (a private balance's too, E9).
    """
    return _topup(
        balance=balance,
        amount=amount,
        voucher=voucher,
        end_time=end_time,
        start_time=start_time,
        actor=actor,
        channel=channel,
        kind=kind,
        request_id=request_id,
    )


def _topup(
    *, balance, amount, voucher, end_time, start_time, actor, channel, kind, request_id
) -> TopupResult:
    """`balance_topup` inside the caller's atomic block."""
    amount = check_topup(balance, amount=amount, voucher=voucher, start_time=start_time)
    locked = _lock(balance.pk)  # validity is read under the lock, with the amount
    now = timezone.now()
    if locked.template.kind == BalanceKind.PERIODIC:
        if not locked.is_live(now):
            raise BadData("The periodic balance has no current interval.", rule="T3")
        interval_id = _credit_interval_id(locked, now, rule="T3")
    else:
        interval_id = None
        if not locked.is_live(now):
            raise BadData("The balance is not live (outside its start and end time).")
    entry = _apply(
        locked=locked,
        amount=amount,
        kind=kind,
        actor=actor,
        channel=channel,
        voucher=voucher,
        reason="",
        request_id=request_id,
        interval_id=interval_id,
        reverses=None,
    )
    _record(
        entry.balance,
        BalanceEventKind.REDEMPTION if kind == LedgerKind.REDEMPTION else BalanceEventKind.TOPUP,
        {"amount": [str(entry.balance.amount - amount), str(entry.balance.amount)]},
        actor=actor,
        channel=channel,
        ledger_entry=entry,
        request_id=request_id,
    )
    if end_time is not None:
        balance_change_end(
            balance_id=balance.pk,
            end_time=end_time,
            via_topup=True,
            actor=actor,
            channel=channel,
            reason=f"Top-up {voucher}" if kind == LedgerKind.TOPUP else "Top-up",
            request_id=request_id,
        )
        entry.balance.refresh_from_db(fields=["end_time"])
    return TopupResult(entry=entry, balance=entry.balance)


def check_external_reference(voucher: str) -> None:
    if not voucher:
        raise BadData("A voucher is required to top up.", rule="T2")
    if len(voucher) > MAX_VOUCHER_LENGTH or not voucher.isprintable():
        raise BadData(
            f"An external voucher reference is 1 to {MAX_VOUCHER_LENGTH} printable characters.",
            rule="T2",
        )


def _external_replay(
    client: ApiClient, voucher: str, balance: Balance, amount: Decimal
) -> TopupResult | None:
    """The original success for a retry of the same top-up; 19 for any other reuse."""
    used = (
        ExternalVoucher.objects.select_related("ledger_entry__balance")
        .filter(client=client, reference=voucher)
        .first()
    )
    if used is None:
        return None
    if LedgerEntry.objects.filter(reverses_id=used.ledger_entry_id).exists():
        # Repeating the success of a top-up the operator reversed would tell the partner the
        # money is there when it is not.
        raise AlreadyRedeemed("This voucher reference's top-up was reversed.")
    if used.balance_id == balance.pk and used.amount == amount:
        return TopupResult(
            entry=used.ledger_entry, balance=used.ledger_entry.balance, replayed=True
        )
    raise AlreadyRedeemed("This voucher reference has already been used.")


def balance_topup_external(
    *,
    client: ApiClient,
    balance: Balance,
    amount: Decimal,
    voucher: str,
    end_time: TimeValue | None = None,
    start_time: TimeValue | None = None,
    actor=None,
    channel: str = Channel.REST,
    request_id: str = "",
) -> TopupResult:
    """Top-up authorized by a trusted voucher system's reference, single-use per client.

    A retry (same client, reference, balance and amount) returns the original success; any
    other reuse is AlreadyRedeemed (19). Two concurrent uses: the reference row's unique index
    makes the second wait for the first to commit, then fail, so it never credits twice.
    """
    check_external_reference(voucher)
    amount = check_topup(balance, amount=amount, voucher=voucher, start_time=start_time)
    replay = _external_replay(client, voucher, balance, amount)
    if replay is not None:
        return replay
    try:
        with transaction.atomic():
            result = _topup(
                balance=balance,
                amount=amount,
                voucher=voucher,
                end_time=end_time,
                start_time=None,
                actor=actor,
                channel=channel,
                kind=LedgerKind.TOPUP,
                request_id=request_id,
            )
            ExternalVoucher.objects.create(
                client=client,
                reference=voucher,
                balance=balance,
                amount=amount,
                ledger_entry=result.entry,
            )
            return result
    except IntegrityError:
        replay = _external_replay(client, voucher, balance, amount)
        if replay is None:
            raise
        return replay


# --- Adjustment ---------------------------------------------------------------------------------


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
    of the same request by the same actor returns the original outcome without a second change.
    """
    if idempotency_key:
        if actor is None:
            raise BadData("An Idempotency-Key needs an authenticated caller.")
        replay = _idempotent_replay(actor, idempotency_key, fingerprint)
        if replay is not None:
            return replay
    try:
        return _balance_adjust(
            balance=balance,
            adjust_type=adjust_type,
            amount=amount,
            reason=reason,
            start_time=start_time,
            end_time=end_time,
            actor=actor,
            channel=channel,
            request_id=request_id,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
        )
    except IntegrityError:
        if not idempotency_key:
            raise
        replay = _idempotent_replay(actor, idempotency_key, fingerprint)
        if replay is None:
            raise
        return replay


def check_reason_text(reason: str) -> None:
    """A reason is one line of text for the audit trail: bounded, and without control
    characters (PostgreSQL cannot store NUL; a JSON body can carry it, and lone surrogates)."""
    if len(reason) > MAX_REASON_LENGTH:
        raise BadData(f"The reason may have at most {MAX_REASON_LENGTH} characters.")
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in reason):
        raise BadData("The reason may not contain control characters.")


def check_adjustment(
    balance: Balance, *, adjust_type, amount: Decimal, reason: str, has_time_change: bool
) -> Decimal:
    if adjust_type not in (AdjustType.CREDIT, AdjustType.DEBIT):
        raise BadData("AdjustType must be 1 (credit) or 2 (debit).")
    amount = Decimal(amount)
    if not amount.is_finite() or amount < 0 or (amount == 0 and not has_time_change):
        raise BadData("Amount must be greater than zero.")
    if not (reason or "").strip():
        raise BadData("A reason is required for an adjustment.")
    check_reason_text(reason)
    if balance.template.kind == BalanceKind.METER:
        raise NotSupported("An amount meter cannot be adjusted.")
    check_precision(balance, amount)
    return amount


@transaction.atomic
def _balance_adjust(
    *,
    balance: Balance,
    adjust_type: int,
    amount: Decimal,
    reason: str,
    start_time,
    end_time,
    actor,
    channel,
    request_id,
    idempotency_key,
    fingerprint,
) -> AdjustResult:
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
        interval_id = _credit_interval_id(balance, timezone.now(), rule="T3")
        entry = _apply(
            balance_id=balance.pk,
            amount=signed,
            kind=LedgerKind.ADJUSTMENT,
            actor=actor,
            channel=channel,
            voucher="",
            reason=reason,
            request_id=request_id,
            interval_id=interval_id,
            reverses=None,
        )
        _record(
            entry.balance,
            BalanceEventKind.ADJUSTMENT,
            {"amount": [str(entry.balance.amount - signed), str(entry.balance.amount)]},
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


# --- Reversal -----------------------------------------------------------------------------------

REVERSIBLE_KINDS = (LedgerKind.TOPUP, LedgerKind.REDEMPTION)


@transaction.atomic
def ledger_entry_reverse(
    *, entry_id: int, reason: str, actor=None, channel: str = Channel.ADMIN
) -> LedgerEntry:
    """Undo a top-up or redemption with a compensating entry; the original stays as it was.

    Cards call this from `cards.services.card_reverse` (which also blocks the card).
    """
    if not (reason or "").strip():
        raise BadData("A reason is required to reverse an entry.")
    check_reason_text(reason)
    entry = LedgerEntry.objects.select_related("balance").get(pk=entry_id)
    if entry.kind not in REVERSIBLE_KINDS:
        raise BadData("Only a top-up or a card redemption can be reversed.")
    balance = _lock(entry.balance_id)
    if LedgerEntry.objects.filter(reverses=entry).exists():
        raise AlreadyRedeemed("This entry has already been reversed.")
    reversal = _apply(
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
    _record(
        reversal.balance,
        BalanceEventKind.REVERSAL,
        {
            "amount": [str(reversal.balance.amount + entry.amount), str(reversal.balance.amount)],
            "reverses": entry.pk,
        },
        actor=actor,
        channel=channel,
        ledger_entry=reversal,
        reason=reason,
    )
    return reversal
