import pytest
from django.db import connection

from tests.factories import BalanceFactory, ResellerFactory, SubscriberFactory, WalletFactory


def pytest_collection_modifyitems(config, items):
    """`postgres` tests need real parallel connections and row locks: skip them on SQLite."""
    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://…")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


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
