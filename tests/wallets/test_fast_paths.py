"""The REST hot path's shortcuts do what the general path does: the one-statement card top-up
(PostgreSQL) writes the same rows as card_redeem, the throttle counts a sliding window."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

import cards.services.topup
from cards.models import CardEvent, TopUpCard
from tests.factories import TopUpCardFactory
from tests.rsgateway.api import Api
from tests.wallets.conftest import make_balance
from wallets.models import BalanceEvent, LedgerEntry
from wallets.ratelimits import rate_count, rate_count_add, rate_limit_hit

pytestmark = pytest.mark.django_db


def _written(card):
    """What a redemption wrote, without ids and times."""
    card = TopUpCard.objects.get(pk=card.pk)
    entry = card.ledger_entry
    event = BalanceEvent.objects.get(ledger_entry=entry)
    card_event = CardEvent.objects.get(card=card, kind="redeemed")
    return {
        "card": (card.activated_by_id, card.activated_at == entry.created_at, card.blocked),
        "entry": (
            entry.balance_id,
            entry.interval_id,
            entry.amount,
            entry.kind,
            entry.channel,
            entry.voucher,
            entry.reason,
            entry.actor_id,
            len(entry.request_id) > 0,
            entry.reverses_id,
        ),
        "balance_event": (
            event.balance_id,
            event.kind,
            event.channel,
            event.actor_id,
            event.reason,
            event.request_id == entry.request_id,
            # the amounts before and after, as text: the same format on either path
            Decimal(event.changes["amount"][1]) - Decimal(event.changes["amount"][0]),
        ),
        "card_event": (
            card_event.serial,
            card_event.actor_id,
            card_event.subscriber_id,
            card_event.channel,
            card_event.ip_address,
            card_event.changes,
        ),
    }


@pytest.mark.postgres
def test_the_one_statement_top_up_writes_what_card_redeem_writes(client, card_client, monkeypatch):
    balance = make_balance()
    fast_card = TopUpCardFactory(amount=Decimal("25.00"), reseller=None)
    slow_card = TopUpCardFactory(amount=Decimal("25.00"), reseller=None)
    api = Api(client, "xml", card_client)

    with CaptureQueriesContext(connection) as fast_queries:
        assert api.topup(balance, Amount="25.00", Voucher=fast_card.pin).status_code == 200
    round_trips = len(fast_queries.captured_queries)  # before the next request clears the log
    monkeypatch.setattr(cards.services.topup, "_topup_in_one_statement", lambda **kwargs: False)
    assert api.topup(balance, Amount="25.00", Voucher=slow_card.pin).status_code == 200

    fast, slow = _written(fast_card), _written(slow_card)
    fast_serial, slow_serial = fast["card_event"][0], slow["card_event"][0]
    assert (fast_serial, slow_serial) == (fast_card.serial, slow_card.serial)
    assert fast["entry"][5] == fast_serial and slow["entry"][5] == slow_serial
    fast["card_event"] = fast["card_event"][1:]
    slow["card_event"] = slow["card_event"][1:]
    fast["entry"] = fast["entry"][:5] + fast["entry"][6:]
    slow["entry"] = slow["entry"][:5] + slow["entry"][6:]
    assert fast == slow
    event = BalanceEvent.objects.get(ledger_entry__voucher=fast_serial)
    assert event.changes == {"amount": ["0.000000", "25.000000"]}
    assert LedgerEntry.objects.filter(balance=balance).count() == 2
    # authentication with the address check, throttle, the top-up: three round trips
    assert round_trips == 3


@pytest.mark.postgres
def test_a_card_the_one_statement_cannot_take_is_left_unchanged_for_the_general_path(
    client, card_client
):
    balance = make_balance()
    card = TopUpCardFactory(amount=Decimal("25.00"), reseller=None)
    api = Api(client, "xml", card_client)

    wrong_amount = api.topup(balance, Amount="10.00", Voucher=card.pin)

    assert wrong_amount.status_code == 422
    card.refresh_from_db()
    assert card.activated_at is None
    assert CardEvent.objects.filter(kind="redeem_failed", card=card).count() == 1
    assert not LedgerEntry.objects.exists()


def test_a_client_gets_its_limit_in_a_period_then_a_wait():
    for _ in range(3):
        assert rate_limit_hit(key="k", limit=3, period=60, now=1000.0).allowed
    refused = rate_limit_hit(key="k", limit=3, period=60, now=1001.0)

    assert not refused.allowed and 0 < refused.wait <= 120
    assert rate_limit_hit(key="other", limit=3, period=60, now=1001.0).allowed
    assert rate_count(key="k", period=60, now=1001.0) == 3  # a refused request is not counted


def test_the_window_slides_over_the_previous_period():
    for _ in range(4):
        assert rate_limit_hit(key="k", limit=4, period=60, now=1190.0).allowed  # slot 19 ends 1200
    # 15 s into the next slot, 3/4 of the previous one is still in the window: 3 of 4 used.
    assert rate_limit_hit(key="k", limit=4, period=60, now=1215.0).allowed
    assert not rate_limit_hit(key="k", limit=4, period=60, now=1216.0).allowed
    # Two periods later nothing is left.
    assert rate_limit_hit(key="k", limit=4, period=60, now=1330.0).allowed
    assert rate_count(key="k", period=60, now=1330.0) == 1


def test_counted_events_are_counted_without_a_limit():
    for _ in range(25):
        rate_count_add(key="address", period=900, now=5000.0)

    assert rate_count(key="address", period=900, now=5000.0) == 25
    assert rate_count(key="address", period=900, now=5000.0 + 2 * 900) == 0


def _prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.postgres
def test_the_hot_statements_are_prepared_once_per_connection(client, card_client, settings):
    """Planning the top-up statement costs more than running it: it must really be prepared
    (Django's psycopg connection ignores prepare=True unless told otherwise)."""
    settings.DATABASE_PREPARED_STATEMENTS = True  # the default, except behind a pooler
    balance = make_balance()
    api = Api(client, "xml", card_client)

    for _ in range(2):
        card = TopUpCardFactory(amount=Decimal("1.00"), reseller=None)
        assert api.topup(balance, Amount="1.00", Voucher=card.pin).status_code == 200

    prepared = _prepared_statements()
    assert any("wallets_ledgerentry" in statement for statement in prepared)  # the top-up
    assert any("auth_user_user_permissions" in statement for statement in prepared)  # who calls
    assert any("wallets_ratecounter" in statement for statement in prepared)  # the throttle
    assert len(prepared) == 3  # the same three each time, nothing else of Django's


@pytest.mark.postgres
def test_behind_a_transaction_pooler_nothing_is_prepared(client, card_client, settings):
    settings.DATABASE_PREPARED_STATEMENTS = False
    balance = make_balance()
    card = TopUpCardFactory(amount=Decimal("1.00"), reseller=None)

    assert Api(client, "xml", card_client).topup(balance, Amount="1.00", Voucher=card.pin)
    assert LedgerEntry.objects.filter(balance=balance).count() == 1
    assert _prepared_statements() == []


@pytest.mark.postgres
def test_the_statements_a_rest_top_up_runs_fit_psycopgs_conversion_cache(
    client, card_client, settings
):
    """psycopg rewrites a statement's %(name)s placeholders on every execute unless its text
    is at most MAX_CACHED_STATEMENT_LENGTH bytes: the commented 5.5 kB top-up statement was
    re-split on every request. The statements as sent carry no comments."""
    from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH

    settings.DATABASE_PREPARED_STATEMENTS = True
    balance = make_balance()
    card = TopUpCardFactory(amount=Decimal("1.00"), reseller=None)
    api = Api(client, "xml", card_client)

    assert api.topup(balance, Amount="1.00", Voucher=card.pin).status_code == 200

    prepared = _prepared_statements()
    assert any("wallets_ledgerentry" in statement for statement in prepared)
    for statement in prepared:
        assert len(statement.encode()) <= MAX_CACHED_STATEMENT_LENGTH
        assert "--" not in statement


def test_compact_drops_comments_and_indentation_but_not_a_literal_that_holds_dashes():
    from wallets.sql import compact

    statement = """
    SELECT 'a -- b' AS x,  -- the label
           1   -- one
    -- a whole comment line
    FROM t WHERE y = 'it''s -- kept'
    """

    assert compact(statement) == "SELECT 'a -- b' AS x,\n1\nFROM t WHERE y = 'it''s -- kept'"
