import base64

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache

from tests.factories import ApiClientFactory, UserFactory
from wallets.models import VoucherMode


@pytest.fixture(autouse=True)
def _fresh_throttle_counts():
    """Throttling counts live in the cache: each test starts from zero."""
    cache.clear()
    yield
    cache.clear()


def basic_auth(username: str, password: str = "secret") -> dict:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


def make_client_user(mode=VoucherMode.CARD, perms=("topup_balance", "adjust_balance"), **kwargs):
    user = UserFactory(**kwargs)
    user.user_permissions.add(*Permission.objects.filter(codename__in=perms))
    ApiClientFactory(user=user, voucher_mode=mode)
    return user


@pytest.fixture
def card_client(db):
    return make_client_user(VoucherMode.CARD, username="partner-test")


@pytest.fixture
def external_client(db):
    return make_client_user(VoucherMode.EXTERNAL, username="vms-test")
