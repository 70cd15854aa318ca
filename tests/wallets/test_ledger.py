"""The ledger invariant: a balance changes only with a ledger entry, in one transaction."""

import threading
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections

from tests.factories import BalanceFactory, BalanceIntervalFactory, BalanceTemplateFactory
from wallets.exceptions import BadData, Result
from wallets.models import Balance, LedgerEntry, LedgerKind
from wallets.services.ledger import balance_apply

pytestmark = pytest.mark.django_db


def test_credit_changes_amount_and_writes_one_entry(main_balance):
    entry = balance_apply(
        balance_id=main_balance.pk, amount=Decimal("15.00"), kind=LedgerKind.TOPUP
    )

    main_balance.refresh_from_db()
    assert main_balance.amount == Decimal("15.00")
    assert list(LedgerEntry.objects.values_list("amount", "kind")) == [
        (Decimal("15.00"), LedgerKind.TOPUP)
    ]
    assert entry.balance_id == main_balance.pk


def test_debit_below_zero_is_refused_and_changes_nothing(main_balance):
    balance_apply(balance_id=main_balance.pk, amount=Decimal("5.00"), kind=LedgerKind.TOPUP)

    with pytest.raises(BadData) as error:
        balance_apply(
            balance_id=main_balance.pk, amount=Decimal("-5.01"), kind=LedgerKind.ADJUSTMENT
        )

    assert error.value.result == Result.BAD_DATA
    main_balance.refresh_from_db()
    assert main_balance.amount == Decimal("5.00")
    assert LedgerEntry.objects.count() == 1


@pytest.mark.parametrize("amount", ["0.001", "0", "NaN"])
def test_amount_with_too_many_places_or_zero_is_refused(main_balance, amount):
    with pytest.raises(BadData):
        balance_apply(balance_id=main_balance.pk, amount=Decimal(amount), kind=LedgerKind.TOPUP)

    main_balance.refresh_from_db()
    assert main_balance.amount == 0
    assert not LedgerEntry.objects.exists()


def test_periodic_credit_changes_interval_and_balance_together():
    interval = BalanceIntervalFactory(balance__template__precision=0)

    balance_apply(
        balance_id=interval.balance_id,
        amount=Decimal("512"),
        kind=LedgerKind.TOPUP,
        interval_id=interval.pk,
    )

    interval.refresh_from_db()
    assert interval.amount == 512
    assert Balance.objects.get(pk=interval.balance_id).amount == 512
    assert LedgerEntry.objects.get().interval_id == interval.pk


def test_check_ledger_passes_on_consistent_data(main_balance):
    balance_apply(balance_id=main_balance.pk, amount=Decimal("7.50"), kind=LedgerKind.TOPUP)
    out = StringIO()

    call_command("check_ledger", stdout=out)

    assert "Ledger OK" in out.getvalue()


def test_check_ledger_names_every_hand_corrupted_balance(main_balance):
    other = BalanceFactory(template=BalanceTemplateFactory(currency="EUR"))
    balance_apply(balance_id=main_balance.pk, amount=Decimal("10.00"), kind=LedgerKind.TOPUP)
    balance_apply(balance_id=other.pk, amount=Decimal("3.00"), kind=LedgerKind.TOPUP)
    # Corrupt by hand, as a stray SQL UPDATE would.
    Balance.objects.filter(pk=main_balance.pk).update(amount=Decimal("99.00"))
    Balance.objects.filter(pk=other.pk).update(amount=Decimal("0.00"))
    err = StringIO()

    with pytest.raises(CommandError, match="2 balance"):
        call_command("check_ledger", stderr=err)

    report = err.getvalue()
    lines = {line.split(" ")[1]: line for line in report.splitlines()}
    assert set(lines) == {str(main_balance.pk), str(other.pk)}
    assert "amount 99.00" in lines[str(main_balance.pk)]
    assert "ledger sums to 10" in lines[str(main_balance.pk)]
    assert "ledger sums to 3" in lines[str(other.pk)]


def test_check_ledger_is_exact_where_the_database_sums_decimals_as_floats(main_balance):
    """SQLite keeps decimals as floats: 0.10 + 0.20 sums to 0.30000000000000004 there, which is
    not the 0.30 the balance holds: such a balance agrees with its ledger and is not reported; a
    real difference of one millionth is."""
    other = BalanceFactory(template=BalanceTemplateFactory(currency="EUR", precision=6))
    for amount in ("0.10", "0.20", "1004.61", "123456789.07"):
        balance_apply(balance_id=main_balance.pk, amount=Decimal(amount), kind=LedgerKind.TOPUP)
    for amount in ("0.100001", "0.200002"):
        balance_apply(balance_id=other.pk, amount=Decimal(amount), kind=LedgerKind.TOPUP)
    out = StringIO()

    call_command("check_ledger", stdout=out)

    assert "Ledger OK" in out.getvalue()
    Balance.objects.filter(pk=other.pk).update(amount=Decimal("0.300004"))
    with pytest.raises(CommandError, match="1 balance"):
        call_command("check_ledger", stdout=StringIO(), stderr=StringIO())


def test_check_ledger_exits_non_zero_from_the_shell(main_balance):
    Balance.objects.filter(pk=main_balance.pk).update(amount=Decimal("1.00"))

    with pytest.raises(SystemExit) as exit_info:
        from django.core.management import execute_from_command_line

        execute_from_command_line(["manage.py", "check_ledger"])

    assert exit_info.value.code != 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_threads_crediting_one_balance_lose_nothing():
    balance = BalanceFactory()
    credits = [Decimal(f"{n}.{n:02d}") for n in range(1, 21)]
    barrier = threading.Barrier(len(credits))
    errors = []

    def credit(amount):
        try:
            barrier.wait(timeout=10)
            balance_apply(balance_id=balance.pk, amount=amount, kind=LedgerKind.TOPUP)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=credit, args=(amount,)) for amount in credits]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    balance.refresh_from_db()
    assert balance.amount == sum(credits)
    assert LedgerEntry.objects.filter(balance=balance).count() == 20
    assert sum(LedgerEntry.objects.filter(balance=balance).values_list("amount", flat=True)) == sum(
        credits
    )
    assert connection.vendor == "postgresql"
