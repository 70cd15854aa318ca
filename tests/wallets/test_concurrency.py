"""Real parallel requests on PostgreSQL: a voucher credits once, locks never deadlock."""

import threading
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from tests.factories import TopUpCardFactory
from tests.parallel import run_together
from tests.rsgateway.api import Api, reply
from tests.wallets.conftest import DAY, make_balance, make_client_user
from wallets.durations import parse_duration
from wallets.models import Balance, ExternalVoucher, LedgerEntry, VoucherMode
from wallets.services.validity import balance_change_end, balance_change_start

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 20


def ledger_ok():
    call_command("check_ledger", stdout=StringIO())


def amounts(balances):
    return [Balance.objects.get(pk=b.pk).amount for b in balances]


@pytest.mark.parametrize("binding", ["xml", "json"])
def test_one_card_sent_by_20_requests_into_20_subscriptions_credits_exactly_once(binding, settings):
    # 19 refusals of one API client are more than a lockout needs: whether the last ones answer
    # 19 or the lockout's 429 depends on when each checks the lockout, not on this test's point.
    settings.REDEEM_LOCKOUT_API_FAILURES = THREADS
    user = make_client_user(VoucherMode.CARD)
    balances = [make_balance() for _ in range(THREADS)]
    card = TopUpCardFactory(amount=Decimal("25.00"), reseller=None)

    def send(balance):
        response = Api(Client(), binding, user).topup(balance, Amount="25.00", Voucher=card.pin)
        return response.status_code, reply(response)["Result"]

    results = run_together([lambda b=b: send(b) for b in balances])

    assert sorted(results) == [(200, 0)] + [(409, 19)] * (THREADS - 1)
    after = amounts(balances)
    assert sorted(after) == [Decimal("0")] * (THREADS - 1) + [Decimal("25.00")]
    assert LedgerEntry.objects.count() == 1
    card.refresh_from_db()
    assert card.ledger_entry.balance_id == balances[after.index(Decimal("25.00"))].pk
    ledger_ok()


def test_one_external_reference_sent_at_once_into_20_subscriptions_credits_once():
    user = make_client_user(VoucherMode.EXTERNAL)
    balances = [make_balance() for _ in range(THREADS)]

    def send(balance):
        response = Api(Client(), "xml", user).topup(balance, Amount="10.00", Voucher="EXT-RACE")
        return response.status_code

    results = run_together([lambda b=b: send(b) for b in balances])

    assert sorted(results) == [200] + [409] * (THREADS - 1)
    assert sum(amounts(balances)) == Decimal("10.00")
    assert ExternalVoucher.objects.count() == 1
    ledger_ok()


def test_the_same_top_up_retried_in_parallel_succeeds_every_time_and_credits_once():
    user = make_client_user(VoucherMode.EXTERNAL)
    balance = make_balance()

    def send():
        response = Api(Client(), "json", user).topup(balance, Amount="10.00", Voucher="RETRY")
        return response.status_code, reply(response)["Result"]

    results = run_together([send] * 10)

    assert results == [(200, 0)] * 10
    assert amounts([balance]) == [Decimal("10.00")]
    ledger_ok()


def test_the_same_idempotency_key_in_parallel_adjusts_once():
    user = make_client_user(VoucherMode.EXTERNAL)
    balance = make_balance()

    def send():
        response = Api(Client(), "xml", user).adjust(
            balance, {"HTTP_IDEMPOTENCY_KEY": "K-1"}, AdjustType="1", Amount="3.00", Reason="r"
        )
        return response.status_code

    results = run_together([send] * 10)

    assert results == [200] * 10
    assert amounts([balance]) == [Decimal("3.00")]
    ledger_ok()


def test_top_ups_with_end_times_and_aggregate_changes_in_parallel_do_not_deadlock():
    """Member top-ups lock member then aggregate (E8); direct changes lock the aggregate."""
    user = make_client_user(VoucherMode.EXTERNAL)
    top = make_balance(group=True, start_days=-10, end_days=10)
    members = [make_balance(start_days=-5, end_days=5, parent=top) for _ in range(6)]

    def topup(n, balance):
        api = Api(Client(), "xml", user)
        return api.topup(balance, Amount="1.00", Voucher=f"D-{n}", EndTime="P1W").status_code

    def extend_top():
        balance_change_end(balance_id=top.pk, end_time=parse_duration("P1D"))
        return 200

    def backdate(balance):
        balance_change_start(balance_id=balance.pk, start_time=timezone.now() - 20 * DAY)
        return 200

    calls = [lambda n=n, b=b: topup(n, b) for n, b in enumerate(members)]
    calls += [extend_top] * 4
    calls += [lambda b=b: backdate(b) for b in members[:4]]
    results = run_together(calls)

    assert results == [200] * len(calls)
    assert sum(amounts(members)) == Decimal("6.00")
    top.refresh_from_db()
    assert top.end_time >= max(Balance.objects.get(pk=m.pk).end_time for m in members)
    assert top.start_time <= min(Balance.objects.get(pk=m.pk).start_time for m in members)
    ledger_ok()


def test_top_ups_of_balances_sharing_a_template_do_not_wait_for_each_other():
    from django.db import connection, transaction

    from tests.factories import BalanceFactory
    from wallets.services.topup import balance_topup

    first = make_balance()
    second = BalanceFactory(template=first.template)
    first_locked, second_done = threading.Event(), threading.Event()
    outcome = {}

    def hold_first():
        with transaction.atomic():
            balance_topup(balance=first, amount=Decimal("1.00"), voucher="HOLD")
            first_locked.set()
            second_done.wait(timeout=10)  # keep the lock until the other one is done

    def top_up_second():
        first_locked.wait(timeout=10)
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    # For this transaction only: a pooler hands the connection on afterwards.
                    cursor.execute("SET LOCAL lock_timeout = '2s'")
                balance_topup(balance=second, amount=Decimal("1.00"), voucher="FREE")
            outcome["second"] = "credited"
        except Exception as exc:  # a lock wait: reported below
            outcome["second"] = repr(exc)
        finally:
            second_done.set()

    run_together([hold_first, top_up_second])

    assert outcome == {"second": "credited"}
    assert amounts([first, second]) == [Decimal("1.00"), Decimal("1.00")]
