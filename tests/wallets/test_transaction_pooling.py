"""Behind a pooler in transaction mode (PgBouncer, deploy/pgbouncer/) each transaction of one
client may run on another server connection: nothing may outlive a transaction.

The PostgreSQL tests here have another client take, in the middle of an operation, the server
connection this client used last (PgBouncer hands out the most recently released one), so the
operation's next transaction runs on another server connection. On a direct connection they
pass trivially; .ci/run runs them a second time through PgBouncer with DATABASE_POOLER=transaction,
where a prepared statement or a server-side cursor kept from one transaction to the next fails.
"""

import runpy
from contextlib import contextmanager
from decimal import Decimal

import psycopg
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.utils import timezone

import wallets.services.intervals
from tests.factories import BalanceFactory, BalanceTemplateFactory, TopUpCardFactory, WalletFactory
from tests.rsgateway.api import Api
from tests.wallets.conftest import make_balance
from wallets.models import BalanceInterval, BalanceKind, LedgerEntry
from wallets.services.intervals import INTERVALS_AHEAD, periodic_intervals_extend

BASE_SETTINGS = "config/settings/base.py"


def _settings(monkeypatch, **environ) -> dict:
    for name in ("DATABASE_POOLER", "DATABASE_PREPARED_STATEMENTS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SECRET_KEY", "x")
    monkeypatch.setenv("DATABASE_URL", "postgres://topup:topup@127.0.0.1:6432/topup")
    return runpy.run_path(BASE_SETTINGS)


def test_behind_a_transaction_pooler_no_server_side_cursor_and_nothing_prepared(monkeypatch):
    pooled = _settings(monkeypatch, DATABASE_POOLER="transaction")
    direct = _settings(monkeypatch)

    assert pooled["DATABASES"]["default"]["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert pooled["DATABASE_PREPARED_STATEMENTS"] is False
    assert direct["DATABASES"]["default"].get("DISABLE_SERVER_SIDE_CURSORS", False) is False
    assert direct["DATABASE_PREPARED_STATEMENTS"] is True


def test_a_pooler_that_keeps_prepared_statements_may_have_them(monkeypatch):
    # PgBouncer 1.21+ with max_prepared_statements.
    pooled = _settings(monkeypatch, DATABASE_POOLER="transaction", DATABASE_PREPARED_STATEMENTS="1")

    assert pooled["DATABASE_PREPARED_STATEMENTS"] is True
    assert pooled["DATABASES"]["default"]["DISABLE_SERVER_SIDE_CURSORS"] is True


def test_a_misspelt_pooler_mode_stops_the_start(monkeypatch):
    with pytest.raises(ImproperlyConfigured, match="DATABASE_POOLER"):
        _settings(monkeypatch, DATABASE_POOLER="transactions")


# --- Through the pooler (PostgreSQL) ----------------------------------------------------------


@contextmanager
def another_client_in_a_transaction():
    """Another client of the database, inside a transaction until the block ends."""
    settings = connection.settings_dict
    other = psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        password=settings["PASSWORD"],
        host=settings["HOST"] or "127.0.0.1",
        port=str(settings["PORT"] or 5432),
    )
    try:
        other.execute("SELECT 1")  # opens the transaction: a pooler gives it a server connection
        yield
    finally:
        other.rollback()
        other.close()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_rest_top_ups_succeed_while_another_client_holds_a_transaction(client, card_client):
    balance = make_balance()
    api = Api(client, "xml", card_client)
    first, second = (TopUpCardFactory(amount=Decimal("1.00"), reseller=None) for _ in range(2))
    assert api.topup(balance, Amount="1.00", Voucher=first.pin).status_code == 200

    with another_client_in_a_transaction():
        # With the statements of the first request prepared on its server connection only,
        # this one would fail on another ("prepared statement … does not exist").
        response = api.topup(balance, Amount="1.00", Voucher=second.pin)

    assert response.status_code == 200
    balance.refresh_from_db()
    assert balance.amount == Decimal("2.00")
    assert LedgerEntry.objects.filter(balance=balance).count() == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_interval_task_runs_while_another_client_holds_a_transaction(monkeypatch):
    template = BalanceTemplateFactory(kind=BalanceKind.PERIODIC, period="P1D", currency="MB")
    start = timezone.now() - timezone.timedelta(days=3)
    balances = [
        BalanceFactory(template=template, start_time=start, wallet=WalletFactory())
        for _ in range(2)
    ]
    ensure = wallets.services.intervals.balance_intervals_ensure
    others = []

    def ensure_then_another_client_comes(**kwargs):
        made = ensure(**kwargs)
        if not others:
            # The task walks its list of balances with QuerySet.iterator(): as a server-side
            # cursor it would live on a server connection the other client now holds.
            others.append(another_client_in_a_transaction())
            others[0].__enter__()
        return made

    monkeypatch.setattr(
        wallets.services.intervals, "balance_intervals_ensure", ensure_then_another_client_comes
    )
    try:
        made = periodic_intervals_extend()
    finally:
        for other in others:
            other.__exit__(None, None, None)

    horizon = timezone.now() + INTERVALS_AHEAD - timezone.timedelta(days=1)
    for balance in balances:
        last = BalanceInterval.objects.filter(balance=balance).order_by("end_time").last()
        assert last is not None and last.end_time >= horizon
    assert made == BalanceInterval.objects.count()


def test_jit_is_off_on_a_direct_connection_and_left_to_the_pooler_behind_one(monkeypatch):
    """PostgreSQL's JIT compiled for up to a second queries that run in milliseconds (report
    pages at 10M cards). The app turns it off where it connects directly; a pooler refuses
    startup options, so behind one the pooler's connect_query does it (deploy/pgbouncer/)."""
    direct = _settings(monkeypatch)
    pooled = _settings(monkeypatch, DATABASE_POOLER="transaction")

    assert "-c jit=off" in direct["DATABASES"]["default"]["OPTIONS"]["options"]
    assert "options" not in pooled["DATABASES"]["default"].get("OPTIONS", {})


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_connection_runs_without_jit():
    """Directly (the app's option) and through PgBouncer (.ci/pgbouncer's connect_query)."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "off"
