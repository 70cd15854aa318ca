"""A token request is counted against its client's rate by the credentials query itself
(PostgreSQL: rsgateway.credentials, wallets.ratelimits.COUNT_SQL): one round trip fewer, and
the same throttle as the throttle's own statement (docs/rest-api.md, throttling)."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from rsgateway.views import ClientRateThrottle
from subscribers.models import StaffReseller
from tests.factories import ResellerFactory, TopUpCardFactory
from tests.rsgateway.api import Api, reply
from tests.wallets.conftest import make_balance, make_client_user
from wallets.exceptions import Result
from wallets.models import LedgerEntry, RateCounter, VoucherMode

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def _token_api(client, user) -> Api:
    api = Api(client, "xml")
    api.auth = {"HTTP_AUTHORIZATION": f"Token {Token.objects.create(user=user).key}"}
    return api


def _count_of(user) -> int:
    row = RateCounter.objects.filter(key=f"throttle_rsgateway_{user.pk}").first()
    return 0 if row is None else row.current


def test_a_token_top_up_takes_two_round_trips(client, card_client):
    balance = make_balance()
    card = TopUpCardFactory(amount=Decimal("25.00"), reseller=None)
    api = _token_api(client, card_client)

    with CaptureQueriesContext(connection) as queries:
        response = api.topup(balance, Amount="25.00", Voucher=card.pin)

    assert (response.status_code, reply(response)["Result"]) == (200, Result.OK)
    # who calls, with the address's wrong credentials and the rate counted; the top-up
    assert len(queries.captured_queries) == 2
    assert _count_of(card_client) == 1
    assert LedgerEntry.objects.filter(balance=balance).count() == 1


def test_a_token_client_gets_its_rate_then_429_with_retry_after(client, monkeypatch):
    monkeypatch.setattr(ClientRateThrottle, "THROTTLE_RATES", {"rsgateway": "2/min"})
    user = make_client_user(VoucherMode.EXTERNAL, username="vms-token")
    balance = make_balance()
    api = _token_api(client, user)

    answers = [api.topup(balance, Amount="1.00", Voucher=f"T-{n}") for n in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert reply(answers[2])["Result"] == Result.FORBIDDEN
    assert int(answers[2]["Retry-After"]) > 0
    assert _count_of(user) == 2  # the refused request is not counted
    assert LedgerEntry.objects.filter(balance=balance).count() == 2


def test_token_and_password_requests_share_one_count(client, monkeypatch):
    monkeypatch.setattr(ClientRateThrottle, "THROTTLE_RATES", {"rsgateway": "3/min"})
    user = make_client_user(VoucherMode.EXTERNAL, username="vms-both")
    user.set_password("secret")
    user.save()
    balance = make_balance()
    by_token, by_password = _token_api(client, user), Api(client, "xml", user)

    codes = [
        api.topup(balance, Amount="1.00", Voucher=f"B-{n}").status_code
        for n, api in enumerate([by_token, by_password, by_token, by_password, by_token])
    ]

    assert codes == [200, 200, 200, 429, 429]
    assert _count_of(user) == 3


@pytest.mark.parametrize("who", ["no permission", "inactive", "reseller staff"])
def test_a_request_refused_before_the_throttle_is_not_counted(client, who):
    perms = () if who == "no permission" else ("topup_balance",)
    user = make_client_user(VoucherMode.CARD, perms=perms, username=f"u-{who}".replace(" ", "-"))
    if who == "inactive":
        user.is_active = False
        user.save()
    if who == "reseller staff":
        StaffReseller.objects.create(user=user, reseller=ResellerFactory())
    balance = make_balance()
    card = TopUpCardFactory(amount=Decimal("1.00"), reseller=None)

    response = _token_api(client, user).topup(balance, Amount="1.00", Voucher=card.pin)

    assert response.status_code in (401, 403)
    assert _count_of(user) == 0
    assert not LedgerEntry.objects.exists()


def test_a_wrong_token_counts_against_the_address_only(client, card_client):
    api = Api(client, "xml")
    api.auth = {"HTTP_AUTHORIZATION": "Token not-a-real-token"}
    balance = make_balance()

    response = api.topup(balance, Amount="1.00", Voucher="123456789012")

    assert response.status_code == 401
    assert list(RateCounter.objects.values_list("key", flat=True)) == [
        "rsgateway-auth-failures:127.0.0.1"
    ]
