"""A token request is counted against its client's rate by the credentials query itself
(PostgreSQL: rsgateway.credentials, wallets.ratelimits.COUNT_SQL): one round trip fewer, and
the same throttle as the throttle's own statement (docs/rest-api.md, throttling)."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from rsgateway.leases import lease_size, leases
from rsgateway.views import AUTH_FAILURE_LIMIT, AUTH_FAILURE_WINDOW, ClientRateThrottle
from subscribers.models import StaffReseller
from tests.factories import ResellerFactory, TopUpCardFactory
from tests.rsgateway.api import Api, reply, subscription_ref
from tests.wallets.conftest import make_balance, make_client_user
from wallets.exceptions import Result
from wallets.models import LedgerEntry, RateCounter, VoucherMode
from wallets.ratelimits import rate_count_add

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def _token_api(client, user) -> Api:
    api = Api(client, "xml")
    api.auth = {"HTTP_AUTHORIZATION": f"Token {Token.objects.create(user=user).key}"}
    return api


def _count_of(user) -> int:
    row = RateCounter.objects.filter(key=f"throttle_rsgateway_{user.pk}").first()
    return 0 if row is None else row.current


def test_a_token_top_up_takes_two_round_trips_then_one_on_its_clients_lease(client, card_client):
    balance = make_balance()
    first, second = (TopUpCardFactory(amount=Decimal("25.00"), reseller=None) for _ in range(2))
    api = _token_api(client, card_client)
    lease = lease_size(ClientRateThrottle().num_requests)
    assert lease > 1  # the default rate (3000/min) counts a few requests at once

    with CaptureQueriesContext(connection) as queries:
        response = api.topup(balance, Amount="25.00", Voucher=first.pin)
    assert (response.status_code, reply(response)["Result"]) == (200, Result.OK)
    # who calls, with the address's wrong credentials and a lease of requests counted; the top-up
    assert len(queries.captured_queries) == 2
    assert _count_of(card_client) == lease

    with CaptureQueriesContext(connection) as queries:
        response = api.topup(balance, Amount="25.00", Voucher=second.pin)
    assert (response.status_code, reply(response)["Result"]) == (200, Result.OK)
    # who calls and the top-up in one statement, the request counted in the lease
    assert len(queries.captured_queries) == 1
    assert _count_of(card_client) == lease
    assert LedgerEntry.objects.filter(balance=balance).count() == 2
    assert set(LedgerEntry.objects.values_list("actor_id", flat=True)) == {card_client.pk}


def _second_request_after(client, user, change):
    """A token top-up that authenticates (so the process holds the token's hint and a lease),
    `change` made to the user, then a second top-up: its reply and card."""
    balance = make_balance()
    first, second = (TopUpCardFactory(amount=Decimal("5.00"), reseller=None) for _ in range(2))
    api = _token_api(client, user)
    assert api.topup(balance, Amount="5.00", Voucher=first.pin).status_code == 200
    change(user)
    response = api.topup(balance, Amount="5.00", Voucher=second.pin)
    second.refresh_from_db()
    return response, second


def _deactivate(user):
    user.is_active = False
    user.save()


def _take_permission(user):
    user.user_permissions.clear()


def _scope_to_a_reseller(user):
    StaffReseller.objects.create(user=user, reseller=ResellerFactory())


def _revoke_token(user):
    Token.objects.filter(user=user).delete()


@pytest.mark.parametrize(
    "change, status",
    [
        (_deactivate, 401),
        (_take_permission, 403),
        (_scope_to_a_reseller, 403),
        (_revoke_token, 401),
    ],
)
def test_the_one_statement_checks_the_caller_again_on_every_request(client, change, status):
    user = make_client_user(VoucherMode.CARD, username="partner-changed")

    response, card = _second_request_after(client, user, change)

    assert response.status_code == status
    assert card.activated_at is None
    assert LedgerEntry.objects.count() == 1


def test_a_client_switched_to_external_vouchers_is_served_as_one(client):
    user = make_client_user(VoucherMode.CARD, username="partner-switched")

    def to_external(user):
        user.api_client.voucher_mode = VoucherMode.EXTERNAL
        user.api_client.save()

    response, card = _second_request_after(client, user, to_external)

    assert response.status_code == 200
    assert card.activated_at is None  # the Voucher is an external reference now
    assert LedgerEntry.objects.filter(voucher=card.pin).count() == 1


def test_an_address_stopped_for_wrong_credentials_tops_up_nothing(client):
    user = make_client_user(VoucherMode.CARD, username="partner-address")

    def wrong_credentials_from_its_address(user):
        for _ in range(AUTH_FAILURE_LIMIT):
            rate_count_add(key="rsgateway-auth-failures:127.0.0.1", period=AUTH_FAILURE_WINDOW)

    response, card = _second_request_after(client, user, wrong_credentials_from_its_address)

    assert response.status_code == 429
    assert card.activated_at is None


def test_a_lease_holds_only_in_the_slot_it_was_counted_in():
    leases.keep("k", 10, 3)
    assert leases.take("k", 10)
    assert not leases.take("k", 11)  # the next slot: counted again
    leases.keep("k", 11, 1)
    assert leases.take("k", 11) and not leases.take("k", 11)
    assert [lease_size(limit) for limit in (1, 399, 400, 3000, 10**6)] == [1, 1, 2, 15, 100]


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


@pytest.mark.parametrize(
    "body, content_type, status",
    [
        ("<MtxRequestSubscriberTopupBalance><Amount>1", "application/xml", 400),
        ("<Other/>", "application/xml", 400),
        ("<MtxRequestSubscriberTopupBalance/>", "text/plain", 415),
    ],
)
def test_a_bad_request_of_a_token_seen_before_gets_the_usual_answer(
    client, card_client, body, content_type, status
):
    balance = make_balance()
    card = TopUpCardFactory(amount=Decimal("1.00"), reseller=None)
    api = _token_api(client, card_client)
    assert api.topup(balance, Amount="1.00", Voucher=card.pin).status_code == 200
    url = api.url(subscription_ref(balance), f"/{balance.resource_id}/topup")

    response = api.send("PUT", url, body, content_type)

    assert response.status_code == status
    assert LedgerEntry.objects.count() == 1
