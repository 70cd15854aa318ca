"""A redemption never waits on a background job (PostgreSQL, issue 15).

A background Mass Edit holds every card of its selection locked until it commits, which at a
million cards takes minutes. A panel or REST redemption of one of those cards is answered at
once with a retryable answer (REST: Result 1, HTTP 503, Retry-After; panel: try again in a
moment), changes nothing, and is not counted as a guess; once the job is done the same request
gets its ordinary answer. The job is held at a chosen point (after its first audit insert, every
card locked and changed) by a patched step, so the test does not depend on timing; the bound
asserted on each answer (5 s, the lock waits 0.3 s) is generous.
"""

import datetime as dt
import threading
import time
from decimal import Decimal

import psycopg
import pytest
from django.db import connections
from django.test import Client
from django.utils import timezone

import cards.sql.selection
from cards.jobs import run_mass_job
from cards.jobs.mass import mass_edit_job_start
from cards.models import CardEvent, CardJob, TopUpCard
from cards.models.events import CardEventKind
from cards.models.jobs import CardJobStatus
from tests.factories import BalanceFactory, SubscriberFactory, TopUpCardFactory
from tests.panel.conftest import grant_redeem
from tests.reliability.pgkill import conninfo
from tests.reliability.support import state
from tests.rsgateway.api import Api, reply
from tests.wallets.conftest import make_client_user
from wallets.exceptions import Result
from wallets.models import Balance, VoucherMode

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

BOUND = 5.0  # seconds: far above the 0.3 s lock wait, far below gunicorn's 30 s
SERIES = "7"


@pytest.fixture
def rose():
    subscriber = SubscriberFactory(name="Rose Orig")
    subscriber.balance = BalanceFactory(
        wallet__subscription__subscriber=subscriber,
        resource_id=12,
        is_main=True,
        end_time=timezone.now() + dt.timedelta(days=30),
    )
    grant_redeem(subscriber.user)
    return subscriber


@pytest.fixture
def on_sale(rose):
    return [
        TopUpCardFactory(series=SERIES, number=n, amount=Decimal("10.00"), reseller=rose.reseller)
        for n in range(1, 6)
    ]


class HeldJob:
    """A background Mass Edit (block every card of the series) run by the worker's task in a
    thread, held after its first audit insert until `release()`."""

    def __init__(self, monkeypatch, actor):
        self.holding = threading.Event()
        self.release_now = threading.Event()
        original = cards.sql.selection.insert_card_events

        def held(*args, **kwargs):
            inserted = original(*args, **kwargs)
            if not self.holding.is_set():
                self.holding.set()
                assert self.release_now.wait(60)
            return inserted

        monkeypatch.setattr(cards.sql.selection, "insert_card_events", held)
        self.job = mass_edit_job_start(
            filters={"series": SERIES}, expected=5, changes={"blocked": True}, actor=actor
        )
        self.thread = threading.Thread(target=self._run)

    def _run(self):
        try:
            run_mass_job.call(self.job.pk)
        finally:
            connections.close_all()

    def __enter__(self):
        self.thread.start()
        assert self.holding.wait(30), "the job never reached its held step"
        return self

    def release(self):
        self.release_now.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()

    def __exit__(self, *exc):
        self.release()


def timed(call):
    started = time.monotonic()
    answer = call()
    return answer, time.monotonic() - started


def locked_cards(series: str) -> int:
    """Rows of the series another transaction holds (seen from a connection of our own)."""
    with psycopg.connect(conninfo(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT id FROM cards_topupcard WHERE series = %s FOR UPDATE SKIP LOCKED", [series]
        ).fetchall()
        total = conn.execute(
            "SELECT count(*) FROM cards_topupcard WHERE series = %s", [series]
        ).fetchone()[0]
    return total - len(rows)


@pytest.mark.parametrize("binding", ["xml", "json"])
def test_rest_top_up_of_a_card_a_job_is_editing_is_answered_at_once_retryably(
    monkeypatch, admin_user, rose, on_sale, binding
):
    partner = make_client_user(VoucherMode.CARD, username="partner")
    api = Api(Client(), binding, partner)
    card = on_sale[0]

    with HeldJob(monkeypatch, admin_user) as held:
        assert locked_cards(SERIES) == 5
        before = state()

        response, took = timed(lambda: api.topup(rose.balance, Amount="10.00", Voucher=card.pin))

        assert took < BOUND
        assert response.status_code == 503
        assert int(response["Retry-After"]) >= 1
        assert reply(response)["Result"] == Result.INTERNAL_ERROR
        assert "try again" in reply(response)["ResultText"]
        assert state() == before  # nothing credited, nothing audited (not counted as a guess)
        assert CardJob.objects.get(pk=held.job.pk).status == CardJobStatus.RUNNING

    job = CardJob.objects.get(pk=held.job.pk)
    assert job.status == CardJobStatus.SUCCEEDED
    assert TopUpCard.objects.filter(series=SERIES, blocked=True).count() == 5
    assert CardEvent.objects.filter(kind=CardEventKind.BLOCKED).count() == 5
    # The same request now gets the card's own answer: it was blocked by the job.
    after = api.topup(rose.balance, Amount="10.00", Voucher=card.pin)
    assert reply(after)["Result"] == Result.VOUCHER_BLOCKED
    assert Balance.objects.get(pk=rose.balance.pk).amount == Decimal("0")


def test_panel_redemption_of_a_card_a_job_is_editing_says_try_again(
    monkeypatch, admin_user, rose, on_sale
):
    client = Client()
    client.force_login(rose.user)
    card = on_sale[1]

    with HeldJob(monkeypatch, admin_user):
        before = state()

        response, took = timed(
            lambda: client.post("/panel/redeem/", {"code": card.pin}, follow=True)
        )

        assert took < BOUND
        assert response.status_code == 200
        assert "Please try again in a moment." in response.content.decode()
        assert state() == before

    card.refresh_from_db()
    assert card.blocked and card.activated_at is None
    again = client.post("/panel/redeem/", {"code": card.pin}, follow=True)
    assert "This voucher is blocked." in again.content.decode()


def test_a_card_outside_the_jobs_selection_is_redeemed_meanwhile(
    monkeypatch, admin_user, rose, on_sale
):
    other = TopUpCardFactory(series="8", number=1, amount=Decimal("10.00"), reseller=rose.reseller)
    partner = make_client_user(VoucherMode.CARD, username="partner")
    api = Api(Client(), "xml", partner)

    with HeldJob(monkeypatch, admin_user):
        response = api.topup(rose.balance, Amount="10.00", Voucher=other.pin)

        assert (response.status_code, reply(response)["Result"]) == (200, Result.OK)

    assert Balance.objects.get(pk=rose.balance.pk).amount == Decimal("10.00")


def _top_up_while_the_balance_is_held(api, balance, card):
    """The top-up of `card` onto `balance` while another transaction holds the balance's row:
    the reply and how long it took."""
    with psycopg.connect(conninfo()) as holder:
        holder.execute("SELECT 1 FROM wallets_balance WHERE id = %s FOR UPDATE", [balance.pk])
        answered = timed(lambda: api.topup(balance, Amount="10.00", Voucher=card.pin))
        holder.rollback()
    return answered


def test_rest_top_up_whose_balance_another_transaction_holds_is_answered_retryably(rose, on_sale):
    """The one-statement path's own lock (the balance) waits a moment at most, too."""
    partner = make_client_user(VoucherMode.CARD, username="partner")
    api = Api(Client(), "json", partner)
    before = state()
    response, took = _top_up_while_the_balance_is_held(api, rose.balance, on_sale[0])

    assert took < BOUND
    assert (response.status_code, reply(response)["Result"]) == (503, Result.INTERNAL_ERROR)
    assert state() == before
    again = api.topup(rose.balance, Amount="10.00", Voucher=on_sale[0].pin)
    assert (again.status_code, reply(again)["Result"]) == (200, Result.OK)


def _token_api(user, binding: str = "xml") -> Api:
    from rest_framework.authtoken.models import Token

    api = Api(Client(), binding)
    api.auth = {"HTTP_AUTHORIZATION": f"Token {Token.objects.create(user=user).key}"}
    return api


def test_a_token_top_up_in_one_statement_whose_balance_is_held_is_answered_retryably(rose, on_sale):
    """With a token seen before, the caller's lookup and the top-up are one statement
    (docs/rest-api.md): its wait on a held balance ends in the same retryable answer."""
    partner = make_client_user(VoucherMode.CARD, username="partner")
    api = _token_api(partner)
    first = api.topup(rose.balance, Amount="10.00", Voucher=on_sale[1].pin)
    assert first.status_code == 200  # the process now holds the token's hint and a lease
    before = state()
    response, took = _top_up_while_the_balance_is_held(api, rose.balance, on_sale[0])

    assert took < BOUND
    assert (response.status_code, reply(response)["Result"]) == (503, Result.INTERNAL_ERROR)
    assert int(response["Retry-After"]) >= 1
    assert state() == before
    again = api.topup(rose.balance, Amount="10.00", Voucher=on_sale[0].pin)
    assert (again.status_code, reply(again)["Result"]) == (200, Result.OK)
    assert Balance.objects.get(pk=rose.balance.pk).amount == Decimal("20.00")


def test_a_token_top_up_of_a_card_a_job_is_editing_is_answered_at_once_retryably(
    monkeypatch, admin_user, rose, on_sale
):
    partner = make_client_user(VoucherMode.CARD, username="partner")
    api = _token_api(partner)
    other = TopUpCardFactory(series="8", number=1, amount=Decimal("10.00"), reseller=rose.reseller)
    assert api.topup(rose.balance, Amount="10.00", Voucher=other.pin).status_code == 200

    with HeldJob(monkeypatch, admin_user):
        before = state()

        response, took = timed(
            lambda: api.topup(rose.balance, Amount="10.00", Voucher=on_sale[0].pin)
        )

        assert took < BOUND
        assert (response.status_code, reply(response)["Result"]) == (503, Result.INTERNAL_ERROR)
        assert state() == before
