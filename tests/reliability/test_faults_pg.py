"""The database connection dies in the middle of an operation (PostgreSQL, real HTTP).

Each test sends a real request to the live server; a patched function stops the request's
backend at a chosen point *after* the operation has already written (its transaction id is
checked), and a second connection kills it with `pg_terminate_backend`. Then: the caller got
an error, the database is exactly as before (nothing half-applied), the ledger balances, and
the same request sent again succeeds on a new connection, once.
"""

import datetime as dt
import threading
from decimal import Decimal

import psycopg
import pytest
from django.utils import timezone

import cards.services.generation
import cards.services.mass_edit
import cards.services.redemption
from cards.models import CardBatch, CardEvent, TopUpCard
from cards.models.events import CardEventKind
from tests.factories import (
    BalanceFactory,
    BalanceTemplateFactory,
    SubscriberFactory,
    TopUpCardFactory,
    UserFactory,
)
from tests.panel.conftest import grant_redeem
from tests.reliability.pgkill import Killer, conninfo, kill_lock_waiter
from tests.reliability.support import (
    HttpClient,
    api_put,
    assert_books_balance,
    session_key_for,
    state,
)
from tests.wallets.conftest import make_client_user
from wallets.exceptions import Result
from wallets.models import Balance, BalanceEvent, ExternalVoucher, LedgerEntry, VoucherMode

# Kills the backend of a connection by its pid, which a pooler in transaction mode changes.
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.direct_connection,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def killer():
    killer = Killer()
    yield killer
    killer.close()


def pause_after(monkeypatch, module, name, killer, *, call=1):
    """Patch `module.name` so that the killer strikes right after its `call`-th call returns."""
    original = getattr(module, name)
    calls = []

    def patched(*args, **kwargs):
        result = original(*args, **kwargs)
        calls.append(1)
        if len(calls) == call:
            killer.pause()
        return result

    monkeypatch.setattr(module, name, patched)


def assert_killed_after_writing(killer):
    """The killer hit one backend, inside a transaction that had already written."""
    assert len(killer.victims) == 1, killer.victims
    victim = killer.victims[0]
    assert victim["terminated"] and victim["in_transaction"] and victim["xid"], victim


@pytest.fixture
def rose():
    """A subscriber with a main USD balance of 0, allowed to redeem in the panel."""
    subscriber = SubscriberFactory(name="Rose Orig")
    wallet_balance = BalanceFactory(
        wallet__subscription__subscriber=subscriber,
        resource_id=12,
        is_main=True,
        end_time=timezone.now() + dt.timedelta(days=30),
    )
    grant_redeem(subscriber.user)
    subscriber.balance = wallet_balance
    return subscriber


def test_rest_card_top_up_killed_after_the_credit_before_the_end_time_leaves_nothing(
    live_server, killer, monkeypatch, rose
):
    partner = make_client_user(VoucherMode.CARD, username="partner")
    card = TopUpCardFactory(amount=Decimal("25.00"), reseller=rose.reseller)
    balance = rose.balance
    external_id = balance.wallet.subscription.external_id
    fields = {"Amount": "25.00", "Voucher": card.pin, "EndTime": "P1W"}
    before = state()
    # The balance is credited and its event written; the end-time change comes next.
    pause_after(monkeypatch, BalanceEvent.objects, "create", killer)
    client = HttpClient(live_server.url)

    killed = api_put(client, "partner", external_id, 12, "topup", **fields)

    assert (killed.status, killed.result()) == (500, Result.INTERNAL_ERROR)
    assert_killed_after_writing(killer)
    assert state() == before
    assert_books_balance()

    again = api_put(client, "partner", external_id, 12, "topup", **fields)

    assert (again.status, again.result()) == (200, Result.OK)
    balance_after = Balance.objects.get(pk=balance.pk)
    assert balance_after.amount == Decimal("25.00")
    assert balance_after.end_time == balance.end_time + dt.timedelta(weeks=1)
    card.refresh_from_db()
    assert card.activated_at is not None and card.ledger_entry.balance_id == balance.pk
    assert LedgerEntry.objects.count() == 1
    assert partner.pk == card.ledger_entry.actor_id
    assert_books_balance()


def test_rest_external_top_up_killed_before_its_reference_is_recorded_credits_once_on_retry(
    live_server, killer, monkeypatch, rose
):
    make_client_user(VoucherMode.EXTERNAL, username="vms")
    external_id = rose.balance.wallet.subscription.external_id
    before = state()
    # Credited, ledger entry and balance event written; the reference row comes next.
    pause_after(monkeypatch, BalanceEvent.objects, "create", killer)
    client = HttpClient(live_server.url)

    killed = api_put(client, "vms", external_id, 12, "topup", Amount="10.00", Voucher="EXT-1")

    assert (killed.status, killed.result()) == (500, Result.INTERNAL_ERROR)
    assert_killed_after_writing(killer)
    assert state() == before

    again = api_put(client, "vms", external_id, 12, "topup", Amount="10.00", Voucher="EXT-1")
    retried = api_put(client, "vms", external_id, 12, "topup", Amount="10.00", Voucher="EXT-1")

    assert (again.status, again.result()) == (200, Result.OK)
    assert (retried.status, retried.result()) == (200, Result.OK)  # the original success
    assert Balance.objects.get(pk=rose.balance.pk).amount == Decimal("10.00")
    assert ExternalVoucher.objects.count() == LedgerEntry.objects.count() == 1
    assert_books_balance()


def test_rest_top_up_killed_while_it_waits_for_the_balance_lock_changes_nothing(
    live_server, killer, rose
):
    make_client_user(VoucherMode.EXTERNAL, username="vms")
    external_id = rose.balance.wallet.subscription.external_id
    before = state()
    client = HttpClient(live_server.url)
    replies = []
    # Another transaction holds the balance row (as a long top-up would).
    with psycopg.connect(conninfo()) as holder:
        holder.execute(
            "SELECT amount FROM wallets_balance WHERE id = %s FOR UPDATE", [rose.balance.pk]
        )
        request = threading.Thread(
            target=lambda: replies.append(
                api_put(client, "vms", external_id, 12, "topup", Amount="3.00", Voucher="W-1")
            )
        )
        request.start()
        kill_lock_waiter(killer, "wallets_balance")
        request.join(timeout=30)
        holder.rollback()

    assert [(r.status, r.result()) for r in replies] == [(500, Result.INTERNAL_ERROR)]
    victim = killer.victims[0]
    assert victim["terminated"] and victim["in_transaction"], victim
    assert state() == before

    again = api_put(client, "vms", external_id, 12, "topup", Amount="3.00", Voucher="W-1")

    assert (again.status, again.result()) == (200, Result.OK)
    assert Balance.objects.get(pk=rose.balance.pk).amount == Decimal("3.00")
    assert_books_balance()


def test_panel_redemption_killed_after_the_credit_before_the_card_is_marked_leaves_nothing(
    live_server, killer, monkeypatch, rose
):
    card = TopUpCardFactory(amount=Decimal("10.00"), reseller=rose.reseller)
    client = HttpClient(live_server.url)
    client.login_as(session_key_for(rose.user))
    assert "Redeem" in client.get("/panel/redeem/").body  # sets the CSRF cookie
    before = state()
    # The multi-statement path (card_redeem), which the panel takes for every case its
    # two-statement fast path leaves to it: the fast path credits and marks the card in one
    # statement, which a crash cannot split.
    monkeypatch.setattr(
        cards.services.redemption, "_redeem_main_in_two_statements", lambda **kwargs: None
    )
    # Balance credited, ledger entry and balance event written; the card is marked next.
    pause_after(monkeypatch, cards.services.redemption, "balance_topup", killer)

    killed = client.post_form("/panel/redeem/", {"code": card.pin})

    assert killed.status == 500
    assert_killed_after_writing(killer)
    assert state() == before
    assert_books_balance()

    again = client.post_form("/panel/redeem/", {"code": card.pin})

    assert again.status == 200
    assert f"Voucher {card.serial} redeemed: 10.00 USD added." in again.body
    assert Balance.objects.get(pk=rose.balance.pk).amount == Decimal("10.00")
    card.refresh_from_db()
    assert card.activated_by_id == rose.pk
    assert CardEvent.objects.filter(kind=CardEventKind.REDEEMED).count() == 1
    assert_books_balance()


def test_generation_killed_inside_the_copy_leaves_no_batch_and_no_card(
    live_server, killer, monkeypatch
):
    admin = UserFactory(username="boss", is_staff=True, is_superuser=True)
    BalanceTemplateFactory(currency="USD")  # Generate takes a currency some balance takes
    client = HttpClient(live_server.url, follow=False)
    client.login_as(session_key_for(admin))
    assert client.get("/admin/cards/topupcard/generate/").status == 200
    form = {
        "amount": "5.00",
        "currency": "USD",
        "quantity": "3000",
        "series": "41",
        "pin_length": "12",
        "reseller": "none",
        "expires_at": (timezone.now() + dt.timedelta(days=90)).strftime("%Y-%m-%d %H:%M:%S"),
    }
    before = state()
    original_rows = cards.services.generation._card_rows
    produced = []

    def rows_then_kill(batch, pin_list, progress):
        for number, row in enumerate(original_rows(batch, pin_list, progress), start=1):
            if number == 2000:  # well past psycopg's buffer: rows have reached the server
                killer.kill_copy()
            produced.append(1)
            yield row

    monkeypatch.setattr(cards.services.generation, "_card_rows", rows_then_kill)

    killed = client.post_form("/admin/cards/topupcard/generate/", form)

    assert killed.status == 500
    assert_killed_after_writing(killer)
    assert killer.victims[0]["query"].startswith('COPY "cards_topupcard"')
    assert len(produced) >= 2000
    assert state() == before
    assert not CardBatch.objects.exists()

    monkeypatch.setattr(cards.services.generation, "_card_rows", original_rows)
    again = client.post_form("/admin/cards/topupcard/generate/", form)

    assert again.status == 302
    batch = CardBatch.objects.get()
    assert (batch.first_serial, batch.last_serial) == ("41-000000001", "41-000003000")
    numbers = TopUpCard.objects.filter(series="41").order_by("number")
    assert list(numbers.values_list("number", flat=True)) == list(range(1, 3001))
    assert CardEvent.objects.filter(kind=CardEventKind.GENERATED).count() == 1


def test_mass_edit_killed_between_two_fields_changes_no_card(live_server, killer, monkeypatch):
    admin = UserFactory(username="boss", is_staff=True, is_superuser=True)
    old_expiry = timezone.now() + dt.timedelta(days=30)
    selected = [
        TopUpCardFactory(series="5", number=n, expires_at=old_expiry, reseller=None)
        for n in range(1, 41)
    ]
    TopUpCardFactory(series="6", number=1, reseller=None)  # outside the search
    client = HttpClient(live_server.url, follow=False)
    client.login_as(session_key_for(admin))
    url = "/admin/cards/topupcard/mass-edit/?serial_from=5"
    assert client.get(url).status == 200
    form = {
        "expires_action": "set",
        "expires_at": "2031-06-30 12:00:00",
        "reseller_action": "preserve",
        "block_action": "block",
        "_confirm": "1",
    }
    before = state()
    # The new expiry is written on every card with its audit events; blocking comes next.
    monkeypatch.setattr(
        cards.services.mass_edit.QuerySet,
        "update",
        _pause_after_first_update(cards.services.mass_edit.QuerySet.update, killer),
    )

    killed = client.post_form(url, form)

    assert killed.status == 500
    assert_killed_after_writing(killer)
    assert state() == before

    monkeypatch.undo()
    again = client.post_form(url, form)

    assert again.status == 302
    changed = TopUpCard.objects.filter(pk__in=[c.pk for c in selected])
    assert changed.filter(blocked=True, expires_at__year=2031).count() == 40
    assert TopUpCard.objects.get(series="6").blocked is False
    assert CardEvent.objects.filter(kind=CardEventKind.EDITED).count() == 40
    assert CardEvent.objects.filter(kind=CardEventKind.BLOCKED).count() == 40


def _pause_after_first_update(update, killer):
    """QuerySet.update that lets the killer strike after the first UPDATE of the mass edit."""

    def patched(queryset, **kwargs):
        count = update(queryset, **kwargs)
        if queryset.model is TopUpCard:
            killer.pause()
        return count

    return patched
