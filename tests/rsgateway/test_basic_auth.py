"""HTTP Basic checks the password hash once per process, not on every request (PBKDF2 at a million
iterations costs a quarter of a second), and a changed password or a deactivated user still takes
effect on the next request."""

from decimal import Decimal

import pytest
from django.contrib.auth import hashers

from rsgateway import credentials
from tests.rsgateway.api import Api, reply
from tests.wallets.conftest import make_balance
from wallets.exceptions import Result

pytestmark = pytest.mark.django_db


@pytest.fixture
def hashes(monkeypatch):
    """Counts the password hashes computed (the expensive part of HTTP Basic)."""
    calls = []

    def counting(password, encoded, setter=None, preferred="default"):
        calls.append(password)
        return hashers.check_password(password, encoded, setter, preferred)

    monkeypatch.setattr("django.contrib.auth.base_user.check_password", counting)
    monkeypatch.setattr(credentials, "_verified", type(credentials._verified)())
    return calls


def test_a_partner_pays_for_the_password_hash_once_not_per_request(client, external_client, hashes):
    vms = Api(client, "xml", external_client)
    balance = make_balance()

    answers = [vms.topup(balance, Amount="1.00", Voucher=f"B-{n}") for n in range(5)]

    assert [a.status_code for a in answers] == [200] * 5
    assert len(hashes) == 1
    balance.refresh_from_db()
    assert balance.amount == Decimal("5.00")


def test_a_wrong_password_is_hashed_every_time_and_never_remembered(
    client, external_client, hashes
):
    wrong = Api(client, "xml", external_client, password="not-it")
    balance = make_balance()

    for _ in range(3):
        response = wrong.topup(balance, Amount="1.00", Voucher="W-1")
        assert response.status_code == 401 and reply(response)["Result"] == Result.UNAUTHENTICATED

    assert len(hashes) == 3
    assert not credentials._verified


def test_a_changed_password_or_a_deactivated_user_takes_effect_at_once(
    client, external_client, hashes
):
    vms = Api(client, "xml", external_client)
    balance = make_balance()
    assert vms.topup(balance, Amount="1.00", Voucher="C-1").status_code == 200

    external_client.set_password("new-secret")
    external_client.save()
    old = vms.topup(balance, Amount="1.00", Voucher="C-2")
    new = Api(client, "xml", external_client, password="new-secret")
    assert new.topup(balance, Amount="1.00", Voucher="C-3").status_code == 200
    external_client.is_active = False
    external_client.save()
    inactive = new.topup(balance, Amount="1.00", Voucher="C-4")

    assert old.status_code == 401 and inactive.status_code == 401
    balance.refresh_from_db()
    assert balance.amount == Decimal("2.00")


def test_a_remembered_password_is_checked_again_after_a_while(external_client, hashes):
    assert credentials.basic_password_ok(external_client, "secret", now=1000.0)
    assert credentials.basic_password_ok(external_client, "secret", now=1299.0)
    assert len(hashes) == 1

    assert credentials.basic_password_ok(external_client, "secret", now=1300.0)
    assert len(hashes) == 2
