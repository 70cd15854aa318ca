"""Top-ups under rules T1–T7 (docs/balance-rules.md): by card serial, or by the reference of a
trusted voucher system (external voucher mode, single-use per API client)."""

from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_noop

from ..exceptions import AlreadyRedeemed, BadData, NotSupported
from ..models import (
    MAX_VOUCHER_LENGTH,
    ApiClient,
    Balance,
    BalanceEvent,
    BalanceEventKind,
    BalanceKind,
    Channel,
    ExternalVoucher,
    LedgerEntry,
    LedgerKind,
)
from .checks import check_precision
from .intervals import credit_interval_id
from .ledger import apply_to_locked, lock_balance
from .validity import TimeValue, balance_change_end


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
    external_client: ApiClient | None = None,
) -> TopupResult:
    """Credit a balance under the top-up rules T1–T7.

    T4: the credit lands on this balance only; nothing rolls up to the aggregated balance above.
    T7: an EndTime changes the end under the end-time rules (a private balance's too, E9).
    `external_client`: the API client whose voucher reference `voucher` is; the reference is
    recorded with the credit, in its transaction (see `balance_topup_external`).
    """
    amount = check_topup(balance, amount=amount, voucher=voucher, start_time=start_time)
    locked = lock_balance(balance.pk)  # validity is read under the lock, with the amount
    now = timezone.now()
    if not locked.is_live(now):
        if locked.template.kind == BalanceKind.PERIODIC:
            # Marked: a panel redemption shows these translated (docs/panel.md, "Languages").
            raise BadData(gettext_noop("The periodic balance has no current interval."), rule="T3")
        raise BadData(gettext_noop("The balance is not live (outside its start and end time)."))
    entry = apply_to_locked(
        locked=locked,
        amount=amount,
        kind=kind,
        actor=actor,
        channel=channel,
        voucher=voucher,
        reason="",
        request_id=request_id,
        interval_id=credit_interval_id(locked, now),
        reverses=None,
    )
    BalanceEvent.objects.create(
        balance=entry.balance,
        kind=(
            BalanceEventKind.REDEMPTION if kind == LedgerKind.REDEMPTION else BalanceEventKind.TOPUP
        ),
        changes={"amount": [str(entry.balance.amount - amount), str(entry.balance.amount)]},
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
            reason=(
                f"Top-up {voucher}" if kind == LedgerKind.TOPUP else f"Top-up with card {voucher}"
            ),
            request_id=request_id,
        )
        entry.balance.refresh_from_db(fields=["end_time"])
    if external_client is not None:
        ExternalVoucher.objects.create(
            client=external_client,
            reference=voucher,
            balance=balance,
            amount=amount,
            ledger_entry=entry,
        )
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
        return balance_topup(
            balance=balance,
            amount=amount,
            voucher=voucher,
            end_time=end_time,
            actor=actor,
            channel=channel,
            kind=LedgerKind.TOPUP,
            request_id=request_id,
            external_client=client,
        )
    except IntegrityError:
        replay = _external_replay(client, voucher, balance, amount)
        if replay is None:
            raise
        return replay
