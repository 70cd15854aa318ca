import pytest
from django.conf import settings
from django.db import connection

from rsgateway.leases import leases, token_hints
from tests.factories import BalanceFactory, ResellerFactory, SubscriberFactory, WalletFactory


def pytest_collection_modifyitems(config, items):
    """`postgres` tests need real parallel connections and row locks: skip them on SQLite.
    `direct_connection` tests kill a connection's backend or run a cluster of their own: skip
    them when the run goes through a pooler in transaction mode (.ci/run's second run)."""
    if connection.vendor != "postgresql":
        skip = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://…")
        marker = "postgres"
    elif settings.DATABASE_POOLER == "transaction":
        skip = pytest.mark.skip(reason="needs a direct connection: run without DATABASE_POOLER")
        marker = "direct_connection"
    else:
        return
    for item in items:
        if marker in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _nothing_remembered_between_tests():
    """What an app server process keeps between REST requests (rate leases, token hints) must not
    carry one test's client into the next."""
    leases.clear()
    token_hints.clear()
    yield
    leases.clear()
    token_hints.clear()


@pytest.fixture
def reseller(db):
    return ResellerFactory(name="Reseller 1")


@pytest.fixture
def subscriber(db, reseller):
    return SubscriberFactory(name="Rose Orig", reseller=reseller)


@pytest.fixture
def main_balance(db, subscriber):
    wallet = WalletFactory(subscription__subscriber=subscriber)
    return BalanceFactory(wallet=wallet, resource_id=12, is_main=True)
