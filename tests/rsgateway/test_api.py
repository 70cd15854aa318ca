"""The REST gateway through HTTP, in both bindings: every Result row of docs/rest-api.md."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from cards import pins
from cards.exceptions import RedemptionLocked
from cards.models import CardEvent
from cards.models.events import CardEventKind
from cards.services.reversal import card_reverse, entry_reverse
from rsgateway.views import ClientRateThrottle
from tests.factories import AccessNumberFactory, TopUpCardFactory, UserFactory, WalletFactory
from tests.rsgateway.api import TOPUP, Api, body, reply, subscription_ref
from tests.wallets.conftest import DAY, make_balance, make_client_user, snapshot
from wallets.exceptions import Result
from wallets.models import Balance, BalanceKind, LedgerEntry, VoucherMode

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["xml", "json"])
def binding(request):
    return request.param


@pytest.fixture
def vms(client, binding, external_client):
    return Api(client, binding, external_client)


@pytest.fixture
def partner(client, binding, card_client):
    return Api(client, binding, card_client)


def amount_of(balance) -> Decimal:
    return Balance.objects.get(pk=balance.pk).amount


def assert_refused(response, result: int, http: int):
    data = reply(response)
    assert (response.status_code, data["Result"]) == (http, result), data
    assert data["$"] == "MtxResponse" and data["ResultText"]
    return data


# --- Result 0 -----------------------------------------------------------------------------------


def test_external_topup_credits_and_records_the_reference(vms):
    balance = make_balance(amount="5.00")

    response = vms.topup(balance, Amount="25.00", Voucher="VMS-0001")

    assert response.status_code == 200
    assert reply(response) == {
        "$": "MtxResponse",
        "RouteId": 1 if vms.binding == "json" else "1",
        "Result": 0,
        "ResultText": "OK",
    }
    assert amount_of(balance) == Decimal("30.00")
    entry = LedgerEntry.objects.get(kind="topup")
    assert (entry.voucher, entry.channel, entry.request_id != "") == ("VMS-0001", "rest", True)
    assert response["X-Request-Id"] == entry.request_id


def test_a_request_id_header_is_kept_on_the_ledger_entry(vms):
    balance = make_balance()

    vms.put(
        balance, "topup", TOPUP, {"Amount": "1.00", "Voucher": "R-1"}, HTTP_X_REQUEST_ID="abc-1"
    )

    assert LedgerEntry.objects.get().request_id == "abc-1"


def test_card_topup_redeems_the_card(partner):
    balance = make_balance()
    card = TopUpCardFactory(amount=Decimal("25.00"), reseller=None)

    response = partner.topup(balance, Amount="25.00", Voucher=pins.format_pin(card.pin))

    assert response.status_code == 200 and reply(response)["Result"] == 0
    card.refresh_from_db()
    assert card.activated_at is not None and card.ledger_entry.balance_id == balance.pk
    assert amount_of(balance) == Decimal("25.00")


def test_a_pin_with_leading_zeros_keeps_them(partner):
    balance = make_balance()
    payload = "00012345678"
    pin = payload + pins.luhn_check_digit(payload)
    TopUpCardFactory(pin=pin, amount=Decimal("10.00"), reseller=None)

    response = partner.topup(balance, Amount="10.00", Voucher=pin)

    assert response.status_code == 200, reply(response)
    assert amount_of(balance) == Decimal("10.00")


def test_access_number_and_object_id_and_subscriber_refs_find_the_balance(vms):
    balance = make_balance()
    subscription = balance.wallet.subscription
    AccessNumberFactory(subscription=subscription, number="5551234567")
    refs = [
        ("subscription", "AccessNumber+5551234567"),
        ("subscription", str(subscription.pk)),
        ("subscriber", str(subscription.subscriber_id)),
        ("subscriber", "AccessNumber+5551234567"),
    ]

    for n, (owner, ref) in enumerate(refs):
        url = vms.url(ref, f"/{balance.resource_id}/topup", owner=owner)
        response = vms.send(
            "PUT", url, body(vms.binding, TOPUP, {"Amount": "1", "Voucher": f"V{n}"})
        )
        assert response.status_code == 200, (owner, ref, reply(response))

    assert amount_of(balance) == Decimal("4.00")


# --- Result -1 (400, 405, 415) -------------------------------------------------------------------

MALFORMED = {
    "xml": [
        "<MtxRequestSubscriberTopupBalance><Amount>1</Amount>",
        "<MtxRequestSubscriberAdjustBalance><Amount>1</Amount></MtxRequestSubscriberAdjustBalance>",
        "<MtxRequestSubscriberTopupBalance><Amount>1</Amount><Bonus>5</Bonus>"
        "</MtxRequestSubscriberTopupBalance>",
        "<MtxRequestSubscriberTopupBalance><Amount>1</Amount><Amount>2</Amount>"
        "</MtxRequestSubscriberTopupBalance>",
        "<MtxRequestSubscriberTopupBalance><Amount><x>1</x></Amount>"
        "</MtxRequestSubscriberTopupBalance>",
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
        "<MtxRequestSubscriberTopupBalance><Voucher>&lol2;</Voucher>"
        "</MtxRequestSubscriberTopupBalance>",
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        "<MtxRequestSubscriberTopupBalance><Voucher>&x;</Voucher>"
        "</MtxRequestSubscriberTopupBalance>",
        "",
    ],
    "json": [
        '{"$": "MtxRequestSubscriberTopupBalance", "Amount": ',
        '{"$": "MtxRequestSubscriberAdjustBalance", "Amount": "1"}',
        '{"$": "MtxRequestSubscriberTopupBalance", "Amount": "1", "Bonus": "5"}',
        '{"$": "MtxRequestSubscriberTopupBalance", "Amount": "1", "Amount": "2"}',
        '{"$": "MtxRequestSubscriberTopupBalance", "Amount": {"x": "1"}}',
        '["MtxRequestSubscriberTopupBalance"]',
        '{"Amount": "1", "Voucher": "x"}',
        '{"$": "MtxRequestSubscriberTopupBalance", "Amount": true, "Voucher": "x"}',
    ],
}


@pytest.mark.parametrize("case", range(8))
def test_malformed_bodies_answer_minus_1_and_change_nothing(vms, case):
    balance = make_balance()
    before = snapshot()
    url = vms.url(subscription_ref(balance), f"/{balance.resource_id}/topup")

    response = vms.send("PUT", url, MALFORMED[vms.binding][case])

    assert_refused(response, Result.MALFORMED, 400)
    assert snapshot() == before


@pytest.mark.parametrize("encoding", ["x-unknown", "rot13", "hex", "utf-7", "utf-32"])
def test_an_xml_encoding_we_cannot_read_is_minus_1_and_changes_nothing(
    client, external_client, encoding
):
    vms = Api(client, "xml", external_client)
    balance = make_balance()
    before = snapshot()
    url = vms.url(subscription_ref(balance), f"/{balance.resource_id}/topup")
    data = f'<?xml version="1.0" encoding="{encoding}"?>' + body(
        "xml", TOPUP, {"Amount": "1.00", "Voucher": "V-ENC"}
    )

    response = vms.send("PUT", url, data)

    assert_refused(response, Result.MALFORMED, 400)
    assert snapshot() == before


def test_an_xml_body_in_latin_1_is_still_read(client, external_client):
    vms = Api(client, "xml", external_client)
    balance = make_balance(amount="5.00")
    url = vms.url(subscription_ref(balance), f"/{balance.resource_id}/topup")
    data = '<?xml version="1.0" encoding="iso-8859-1"?>' + body(
        "xml", TOPUP, {"Amount": "1.00", "Voucher": "V-\u00e9t\u00e9"}
    )

    response = vms.send("PUT", url, data.encode("iso-8859-1"))

    assert reply(response)["Result"] == Result.OK
    assert (
        LedgerEntry.objects.get(balance=balance, voucher__startswith="V-").voucher
        == "V-\u00e9t\u00e9"
    )


@pytest.mark.parametrize("charset", ["x-unknown", "rot13", "idna"])
def test_a_content_type_charset_we_cannot_read_is_minus_1_and_changes_nothing(vms, charset):
    balance = make_balance()
    before = snapshot()
    url = vms.url(subscription_ref(balance), f"/{balance.resource_id}/topup")
    kind = "application/xml" if vms.binding == "xml" else "application/json"

    response = vms.send(
        "PUT",
        url,
        body(vms.binding, TOPUP, {"Amount": "1.00", "Voucher": "V-CS"}),
        content_type=f"{kind}; charset={charset}",
    )

    assert_refused(response, Result.MALFORMED, 400)
    assert snapshot() == before


def test_a_body_over_64_kib_is_refused_without_reading_it_all(vms):
    balance = make_balance()
    before = snapshot()
    padding = "x" * (64 * 1024)
    fields = {"Amount": "1.00", "Voucher": padding}
    url = vms.url(subscription_ref(balance), f"/{balance.resource_id}/topup")

    response = vms.send("PUT", url, body(vms.binding, TOPUP, fields))

    data = assert_refused(response, Result.MALFORMED, 400)
    assert "64 KiB" in data["ResultText"]
    assert snapshot() == before


def test_a_body_of_exactly_64_kib_is_read(vms):
    balance = make_balance()
    empty = body(vms.binding, TOPUP, {"Amount": "1.00", "Voucher": "V"})
    fields = {"Amount": "1.00", "Voucher": "V" * (64 * 1024 - len(empty) + 1)}
    url = vms.url(subscription_ref(balance), f"/{balance.resource_id}/topup")

    response = vms.send("PUT", url, body(vms.binding, TOPUP, fields))

    # Read and parsed: refused for the voucher's length (10), not for the body's size (-1).
    assert_refused(response, Result.BAD_DATA, 422)


def test_wrong_method_is_405_with_an_mtx_reply(vms):
    balance = make_balance()
    url = vms.url(subscription_ref(balance), f"/{balance.resource_id}/topup")
    before = snapshot()

    for method in ("GET", "POST", "DELETE", "OPTIONS"):
        response = getattr(vms.client, method.lower())(url, **vms.auth)
        assert_refused(response, Result.MALFORMED, 405)
        assert response["Allow"] == "PUT"
    assert snapshot() == before


def test_wrong_content_type_is_415_with_an_mtx_reply(vms):
    balance = make_balance()
    before = snapshot()
    url = vms.url(subscription_ref(balance), f"/{balance.resource_id}/topup")
    other = "application/json" if vms.binding == "xml" else "application/xml"

    for content_type in ("text/plain", other):
        response = vms.send("PUT", url, "Amount=1", content_type=content_type)
        assert_refused(response, Result.MALFORMED, 415)
    assert snapshot() == before


# --- Result -4, -7 ------------------------------------------------------------------------------


def test_no_credentials_is_minus_4_with_a_challenge(client, binding):
    balance = make_balance()
    api = Api(client, binding)
    before = snapshot()

    response = api.topup(balance, Amount="1.00", Voucher="V")

    assert_refused(response, Result.UNAUTHENTICATED, 401)
    assert response["WWW-Authenticate"].startswith("Token")
    assert snapshot() == before


def test_bad_password_or_token_is_minus_4(client, binding, external_client):
    balance = make_balance()
    before = snapshot()

    wrong_password = Api(client, binding, external_client, password="nope")
    response = wrong_password.topup(balance, Amount="1.00", Voucher="V")
    assert_refused(response, Result.UNAUTHENTICATED, 401)

    api = Api(client, binding)
    api.auth = {"HTTP_AUTHORIZATION": "Token 0123456789abcdef0123456789abcdef01234567"}
    assert_refused(api.topup(balance, Amount="1.00", Voucher="V"), Result.UNAUTHENTICATED, 401)
    assert snapshot() == before


def test_a_token_authenticates(client, binding, external_client):
    from rest_framework.authtoken.models import Token

    balance = make_balance()
    api = Api(client, binding)
    api.auth = {"HTTP_AUTHORIZATION": f"Token {Token.objects.create(user=external_client).key}"}

    assert api.topup(balance, Amount="1.00", Voucher="V").status_code == 200


def test_without_the_permission_it_is_minus_7(client, binding):
    balance = make_balance()
    topup_only = make_client_user(VoucherMode.EXTERNAL, perms=("topup_balance",))
    nothing = make_client_user(VoucherMode.EXTERNAL, perms=())
    before = snapshot()

    response = Api(client, binding, nothing).topup(balance, Amount="1.00", Voucher="V")
    assert_refused(response, Result.FORBIDDEN, 403)
    response = Api(client, binding, topup_only).adjust(
        balance, AdjustType="1", Amount="1.00", Reason="r"
    )
    assert_refused(response, Result.FORBIDDEN, 403)
    assert snapshot() == before


def test_throttling_per_client_is_429(vms, monkeypatch, client, binding):
    monkeypatch.setattr(ClientRateThrottle, "THROTTLE_RATES", {"rsgateway": "2/min"})
    balance = make_balance()

    codes = [vms.topup(balance, Amount="1.00", Voucher=f"T-{n}").status_code for n in range(3)]
    other = Api(client, binding, make_client_user(VoucherMode.EXTERNAL))
    other_code = other.topup(balance, Amount="1.00", Voucher="T-other").status_code

    assert codes == [200, 200, 429]
    assert other_code == 200  # another client has its own budget
    assert amount_of(balance) == Decimal("3.00")


def test_throttled_reply_is_an_mtx_response_with_retry_after(vms, monkeypatch):
    monkeypatch.setattr(ClientRateThrottle, "THROTTLE_RATES", {"rsgateway": "1/min"})
    balance = make_balance()
    vms.topup(balance, Amount="1.00", Voucher="T-1")
    before = snapshot()

    response = vms.topup(balance, Amount="1.00", Voucher="T-2")

    assert_refused(response, Result.FORBIDDEN, 429)
    assert int(response["Retry-After"]) > 0
    assert snapshot() == before


def test_repeated_wrong_credentials_from_one_address_are_stopped(client, binding, external_client):
    from rsgateway.views import AUTH_FAILURE_LIMIT

    balance = make_balance()
    wrong = Api(client, binding, external_client, password="guess")
    right = Api(client, binding, external_client)

    codes = {wrong.topup(balance, Amount="1", Voucher="V").status_code for _ in range(20)}
    assert codes == {401} and AUTH_FAILURE_LIMIT == 20
    blocked = right.topup(balance, Amount="1.00", Voucher="V")
    elsewhere = right.put(
        balance, "topup", TOPUP, {"Amount": "1.00", "Voucher": "W"}, REMOTE_ADDR="198.51.100.7"
    )

    assert_refused(blocked, Result.FORBIDDEN, 429)
    assert int(blocked["Retry-After"]) > 0
    assert elsewhere.status_code == 200
    assert amount_of(balance) == Decimal("1.00")


def test_behind_a_proxy_the_forwarded_address_is_the_client(partner, monkeypatch, settings):

    seen = {}

    def spy(**kwargs):
        seen.update(kwargs)
        raise RedemptionLocked()

    monkeypatch.setattr("cards.services.topup.card_redeem", spy)
    settings.TRUSTED_PROXY_COUNT = 1
    balance = make_balance()

    partner.put(
        balance,
        "topup",
        TOPUP,
        {"Amount": "25.00", "Voucher": "1234"},
        REMOTE_ADDR="10.0.0.1",
        HTTP_X_FORWARDED_FOR="192.0.2.1, 203.0.113.50",
    )

    assert seen["ip_address"] == "203.0.113.50"


def test_a_redemption_lockout_is_429_with_retry_after(partner, monkeypatch):
    def locked(**kwargs):
        raise RedemptionLocked(locked_until=timezone.now() + dt.timedelta(minutes=15))

    monkeypatch.setattr("cards.services.topup.card_redeem", locked)
    balance = make_balance()
    before = snapshot()

    response = partner.topup(balance, Amount="25.00", Voucher=pins.generate_pin(12))

    assert_refused(response, Result.FORBIDDEN, 429)
    assert 800 < int(response["Retry-After"]) <= 900
    assert snapshot() == before


def test_card_mode_passes_channel_actor_and_client_ip_to_card_redeem(partner, monkeypatch):
    seen = {}

    def spy(**kwargs):
        seen.update(kwargs)
        raise RedemptionLocked()

    monkeypatch.setattr("cards.services.topup.card_redeem", spy)
    balance = make_balance()

    partner.put(
        balance,
        "topup",
        TOPUP,
        {"Amount": "25.00", "Voucher": "1234"},
        REMOTE_ADDR="203.0.113.9",
    )

    assert seen["channel"] == "rest" and seen["actor"].username == "partner-test"
    assert seen["ip_address"] == "203.0.113.9"
    assert seen["expected_amount"] == Decimal("25.00") and seen["allow_replay"] is True


def test_an_address_that_cannot_be_read_is_recorded_as_none(partner, monkeypatch):
    seen = {}

    def spy(**kwargs):
        seen.update(kwargs)
        raise RedemptionLocked()

    monkeypatch.setattr("cards.services.topup.card_redeem", spy)
    balance = make_balance()

    partner.put(
        balance, "topup", TOPUP, {"Amount": "25.00", "Voucher": "1234"}, REMOTE_ADDR="unix:0"
    )

    assert seen["ip_address"] is None


# --- Result 11, -17, 404 ------------------------------------------------------------------------


def test_unknown_subscription_balance_or_card_is_11(partner):
    balance = make_balance()
    before = snapshot()
    pin = pins.generate_pin(12)

    for ref in ["ExternalId+nobody/12", "AccessNumber+999/12", "987654321/12", "abc/12"]:
        response = partner.put(ref, "topup", TOPUP, {"Amount": "1.00", "Voucher": pin})
        assert_refused(response, Result.NOT_FOUND, 404)
    response = partner.put(
        f"{subscription_ref(balance)}/999", "topup", TOPUP, {"Amount": "1.00", "Voucher": pin}
    )
    assert "resource id 999" in assert_refused(response, Result.NOT_FOUND, 404)["ResultText"]
    response = partner.topup(balance, Amount="1.00", Voucher=pin)
    assert_refused(response, Result.NOT_FOUND, 404)
    assert snapshot() == before


def test_a_subscriber_with_several_subscriptions_must_be_addressed_by_subscription(vms):
    balance = make_balance(resource_id=12)
    subscriber = balance.wallet.subscription.subscriber
    make_balance(resource_id=12, wallet=WalletFactory(subscription__subscriber=subscriber))
    before = snapshot()
    url = vms.url(str(subscriber.pk), "/12/topup", owner="subscriber")

    response = vms.send("PUT", url, body(vms.binding, TOPUP, {"Amount": "1.00", "Voucher": "V"}))

    assert "address the subscription" in assert_refused(response, 10, 422)["ResultText"]
    assert snapshot() == before


def test_subscribers_have_no_external_id_search_term(vms):
    balance = make_balance()
    url = vms.url("ExternalId+x", f"/{balance.resource_id}/topup", owner="subscriber")
    before = snapshot()

    response = vms.send("PUT", url, body(vms.binding, TOPUP, {"Amount": "1.00", "Voucher": "V"}))

    assert_refused(response, Result.UNKNOWN_SEARCH_TERM, 422)
    assert snapshot() == before


def test_unknown_search_term_is_minus_17(vms):
    balance = make_balance()
    before = snapshot()

    for ref in ["Imsi+123", "externalid+x"]:
        response = vms.put(f"{ref}/{balance.resource_id}", "topup", TOPUP, {"Amount": "1"})
        assert_refused(response, Result.UNKNOWN_SEARCH_TERM, 422)
    assert snapshot() == before


def test_unknown_paths_under_rsgateway_are_404_mtx_replies_in_their_binding(client):
    for path, media in [
        ("/rsgateway/data/v3/subscription/1/wallet/12/transfer", "application/xml"),
        ("/rsgateway/data/json/subscription/1/wallet/12/nothing", "application/json"),
        ("/rsgateway/nothing/", "application/xml"),
        ("/rsgateway/data/v3/subscription/1/wallet/12/topup/", "application/xml"),
    ]:
        response = client.put(path, "", content_type="application/xml")
        assert response.status_code == 404, path
        assert response["Content-Type"].startswith(media)
        assert reply(response)["Result"] == Result.NOT_FOUND


# --- Result 19, 41, 10, 40 (card mode) ----------------------------------------------------------


def test_a_retried_card_topup_returns_the_original_success_once(partner):
    balance = make_balance()
    card = TopUpCardFactory(amount=Decimal("25.00"), reseller=None)

    first = partner.topup(balance, Amount="25.00", Voucher=card.pin)
    again = partner.topup(balance, Amount="25.00", Voucher=card.pin)

    assert (first.status_code, again.status_code) == (200, 200)
    assert reply(again)["Result"] == 0
    assert amount_of(balance) == Decimal("25.00")
    assert LedgerEntry.objects.count() == 1


def test_a_retry_after_the_operator_reversed_the_card_is_19_not_the_old_success(partner):
    balance = make_balance()
    card = TopUpCardFactory(amount=Decimal("25.00"), reseller=None)
    assert partner.topup(balance, Amount="25.00", Voucher=card.pin).status_code == 200
    card_reverse(card_id=card.pk, reason="Sold by mistake")
    before = snapshot()

    again = partner.topup(balance, Amount="25.00", Voucher=card.pin)

    assert_refused(again, Result.ALREADY_REDEEMED, 409)
    assert snapshot() == before
    assert amount_of(balance) == 0


def test_a_redeemed_card_on_another_subscription_is_19(partner):
    balance, other = make_balance(), make_balance()
    card = TopUpCardFactory(amount=Decimal("25.00"), reseller=None)
    partner.topup(balance, Amount="25.00", Voucher=card.pin)
    before = snapshot()

    response = partner.topup(other, Amount="25.00", Voucher=card.pin)

    assert_refused(response, Result.ALREADY_REDEEMED, 409)
    assert snapshot() == before


CARD_REFUSALS = [
    (dict(blocked=True), {}, Result.VOUCHER_BLOCKED, 422),
    (dict(expires_at=timezone.now() - DAY), {}, Result.BAD_DATA, 422),
    (dict(amount=Decimal("10.00")), {}, Result.BAD_DATA, 422),  # Amount is not the card's
    (dict(currency="EUR"), {}, Result.BAD_DATA, 422),
    ({}, {"Amount": "25.001"}, Result.BAD_DATA, 422),
    ({}, {"Amount": "0"}, Result.BAD_DATA, 422),
    ({}, {"Voucher": ""}, Result.BAD_DATA, 422),
    ({}, {"StartTime": "2020-01-01T00:00:00Z"}, Result.NOT_SUPPORTED, 422),
]


@pytest.mark.parametrize(("card_kwargs", "fields", "result", "http"), CARD_REFUSALS)
def test_card_refusals_answer_their_result_and_change_nothing(
    partner, card_kwargs, fields, result, http
):
    balance = make_balance()
    card = TopUpCardFactory(**{"amount": Decimal("25.00"), "reseller": None, **card_kwargs})
    before = snapshot()

    response = partner.topup(balance, **{"Amount": "25.00", "Voucher": card.pin, **fields})

    assert_refused(response, result, http)
    assert snapshot() == before
    card.refresh_from_db()
    assert card.activated_at is None


def test_a_meter_cannot_be_topped_up_with_a_card(partner):
    meter = make_balance(BalanceKind.METER, precision=0)
    card = TopUpCardFactory(amount=Decimal("25.00"), reseller=None)
    before = snapshot()

    response = partner.topup(meter, Amount="25", Voucher=card.pin)

    assert_refused(response, Result.NOT_SUPPORTED, 422)
    assert snapshot() == before
    assert not CardEvent.objects.filter(kind=CardEventKind.REDEEM_FAILED).exists()


def test_a_failed_card_topup_is_audited_for_the_lockout(partner):
    balance = make_balance()
    card = TopUpCardFactory(amount=Decimal("25.00"), reseller=None, blocked=True)

    partner.topup(balance, Amount="25.00", Voucher=card.pin)

    event = CardEvent.objects.get(kind=CardEventKind.REDEEM_FAILED)
    assert (event.card, event.channel, event.actor.username) == (card, "rest", "partner-test")


def test_card_topup_with_end_time_extends_the_balance(partner):
    balance = make_balance(end_days=5)
    card = TopUpCardFactory(amount=Decimal("25.00"), reseller=None)

    response = partner.topup(balance, Amount="25.00", Voucher=card.pin, EndTime="P4W")

    assert response.status_code == 200, reply(response)
    assert Balance.objects.get(pk=balance.pk).end_time == balance.end_time + dt.timedelta(weeks=4)


def test_card_topup_with_a_bad_end_time_leaves_the_card_new(partner):
    balance = make_balance(end_days=5, end_adjust=False)
    card = TopUpCardFactory(amount=Decimal("25.00"), reseller=None)
    before = snapshot()

    response = partner.topup(balance, Amount="25.00", Voucher=card.pin, EndTime="P4W")

    assert_refused(response, Result.BAD_DATA, 422)
    assert snapshot() == before
    card.refresh_from_db()
    assert card.activated_at is None


# --- External voucher mode ----------------------------------------------------------------------


def test_an_external_retry_returns_the_original_success_and_other_reuse_is_19(vms):
    balance, other = make_balance(), make_balance()
    assert vms.topup(balance, Amount="25.00", Voucher="EXT-1").status_code == 200

    retry = vms.topup(balance, Amount="25.0", Voucher="EXT-1")
    assert (retry.status_code, reply(retry)["Result"]) == (200, 0)
    before = snapshot()
    for target, amount in [(other, "25.00"), (balance, "20.00")]:
        response = vms.topup(target, Amount=amount, Voucher="EXT-1")
        assert_refused(response, Result.ALREADY_REDEEMED, 409)

    assert snapshot() == before
    assert amount_of(balance) == Decimal("25.00") and amount_of(other) == 0


def test_an_external_retry_after_the_operator_reversed_the_top_up_is_19(vms):
    balance = make_balance()
    assert vms.topup(balance, Amount="25.00", Voucher="EXT-R").status_code == 200
    entry_reverse(entry_id=LedgerEntry.objects.get(voucher="EXT-R").pk, reason="Fraud")
    before = snapshot()

    again = vms.topup(balance, Amount="25.00", Voucher="EXT-R")

    assert_refused(again, Result.ALREADY_REDEEMED, 409)
    assert "reversed" in reply(again)["ResultText"]
    assert snapshot() == before
    assert amount_of(balance) == 0


def test_external_references_are_single_use_per_client_not_globally(vms, client, binding):
    balance = make_balance()
    other_client = Api(client, binding, make_client_user(VoucherMode.EXTERNAL))

    assert vms.topup(balance, Amount="1.00", Voucher="SHARED").status_code == 200
    assert other_client.topup(balance, Amount="1.00", Voucher="SHARED").status_code == 200

    assert amount_of(balance) == Decimal("2.00")


@pytest.mark.parametrize("voucher", ["x" * 65, "tab\there"])
def test_an_external_reference_must_be_1_to_64_printable_characters(vms, voucher):
    balance = make_balance()
    before = snapshot()

    assert_refused(vms.topup(balance, Amount="1.00", Voucher=voucher), Result.BAD_DATA, 422)
    assert snapshot() == before


# --- Adjustment ---------------------------------------------------------------------------------


def test_adjustment_credit_and_debit(vms):
    balance = make_balance(amount="10.00")

    credit = vms.adjust(balance, AdjustType="1", Amount="2.50", Reason="Goodwill")
    debit = vms.adjust(balance, AdjustType="2", Amount="5.00", Reason="Correction")

    assert (credit.status_code, debit.status_code) == (200, 200)
    assert amount_of(balance) == Decimal("7.50")
    entries = list(LedgerEntry.objects.filter(kind="adjustment").order_by("pk"))
    assert [(e.amount, e.reason) for e in entries] == [
        (Decimal("2.50"), "Goodwill"),
        (Decimal("-5.00"), "Correction"),
    ]


ADJUST_REFUSALS = [
    ({"AdjustType": "2", "Amount": "10.01"}, Result.BAD_DATA),  # would go negative
    ({"AdjustType": "3"}, Result.BAD_DATA),
    ({"Reason": ""}, Result.BAD_DATA),
    ({"Amount": "0"}, Result.BAD_DATA),
    ({"Amount": "1.001"}, Result.BAD_DATA),
    ({"Amount": "1e3"}, Result.BAD_DATA),
    ({"EndTime": "tomorrow"}, Result.BAD_DATA),
    ({"EndTime": "P1X"}, Result.BAD_DATA),
    ({"EndTime": "P9999Y"}, Result.BAD_DATA),
    ({"Amount": "999999999999999999"}, Result.BAD_DATA),  # more than a balance can hold
]


@pytest.mark.parametrize(("fields", "result"), ADJUST_REFUSALS)
def test_adjustment_refusals_change_nothing(vms, fields, result):
    balance = make_balance(amount="10.00")
    before = snapshot()

    response = vms.adjust(balance, **{"AdjustType": "1", "Amount": "1.00", "Reason": "r", **fields})

    assert_refused(response, result, 422)
    assert snapshot() == before


def test_a_meter_is_never_adjusted(vms):
    meter = make_balance(BalanceKind.METER, precision=0)
    before = snapshot()

    response = vms.adjust(meter, AdjustType="1", Amount="5", Reason="r")

    assert_refused(response, Result.NOT_SUPPORTED, 422)
    assert snapshot() == before


def test_a_validity_only_adjustment_needs_no_amount(vms):
    balance = make_balance(end_days=5)

    response = vms.adjust(balance, AdjustType="1", Amount="0", Reason="Extend", EndTime="P1W")

    assert response.status_code == 200, reply(response)
    assert Balance.objects.get(pk=balance.pk).end_time == balance.end_time + dt.timedelta(weeks=1)
    assert not LedgerEntry.objects.exists()


def test_a_periodic_adjustment_lands_in_the_current_interval(vms):
    balance = make_balance(BalanceKind.PERIODIC, precision=0, currency="MB")

    vms.adjust(balance, AdjustType="1", Amount="100", Reason="Bonus")

    current = balance.intervals.get(start_time__lte=timezone.now(), end_time__gt=timezone.now())
    assert current.amount == 100 and amount_of(balance) == 100


def test_an_idempotency_key_makes_a_repeated_adjustment_count_once(vms):
    balance = make_balance()
    key = {"HTTP_IDEMPOTENCY_KEY": "adj-42"}

    first = vms.adjust(balance, key, AdjustType="1", Amount="3.00", Reason="Goodwill")
    again = vms.adjust(balance, key, AdjustType="1", Amount="3.00", Reason="Goodwill")

    assert (first.status_code, again.status_code) == (200, 200)
    assert amount_of(balance) == Decimal("3.00")
    before = snapshot()
    changed = vms.adjust(balance, key, AdjustType="1", Amount="4.00", Reason="Goodwill")
    assert_refused(changed, Result.BAD_DATA, 422)
    assert snapshot() == before
    # Without the key, the same request is a new adjustment.
    vms.adjust(balance, AdjustType="1", Amount="3.00", Reason="Goodwill")
    assert amount_of(balance) == Decimal("6.00")


def test_an_idempotency_key_is_per_client(vms, client, binding):
    balance = make_balance()
    other = Api(client, binding, make_client_user(VoucherMode.EXTERNAL))
    key = {"HTTP_IDEMPOTENCY_KEY": "same-key"}

    vms.adjust(balance, key, AdjustType="1", Amount="3.00", Reason="Goodwill")
    other.adjust(balance, key, AdjustType="1", Amount="3.00", Reason="Goodwill")

    assert amount_of(balance) == Decimal("6.00")


# --- Every rule through HTTP ----------------------------------------------------------------------


def _abs(days: float) -> str:
    moment = timezone.now() + days * DAY
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_S5 = {"StartTime": _abs(-50)}
RULES = [
    # (rule, balance kwargs, operation, fields, expected Result)
    ("T1", {}, "topup", {"Amount": "-1.00"}, Result.BAD_DATA),
    ("T2", {}, "topup", {"Voucher": ""}, Result.BAD_DATA),
    ("T3", dict(kind=BalanceKind.PERIODIC, start_days=-35, end_days=-5), "topup", {}, 10),
    ("T4", dict(kind=BalanceKind.VIRTUAL), "topup", {}, Result.OK),
    ("T5", dict(kind=BalanceKind.METER, precision=0), "topup", {"Amount": "1"}, 40),
    ("T6", dict(precision=1), "topup", {"Amount": "1.25"}, Result.BAD_DATA),
    ("T7", {}, "topup", {"StartTime": _abs(-20)}, Result.NOT_SUPPORTED),
    ("T7", dict(end_days=5), "topup", {"EndTime": "P4W"}, Result.OK),
    ("S1", dict(kind=BalanceKind.VIRTUAL), "adjust", {"StartTime": _abs(-20)}, 10),
    ("S2", dict(kind=BalanceKind.PERIODIC, precision=0), "adjust", {"StartTime": _abs(-40)}, 0),
    ("S3", {}, "adjust", {"StartTime": _abs(-5)}, Result.BAD_DATA),
    ("S4", {}, "adjust", {"StartTime": "-P1D"}, Result.BAD_DATA),
    ("S5", dict(kind=BalanceKind.PERIODIC, start_days=-40, end_days=-1), "adjust", _S5, 10),
    ("S5", dict(start_days=-40, end_days=-1), "adjust", _S5, Result.OK),
    ("S7", dict(private=True), "adjust", {"StartTime": _abs(-20)}, Result.BAD_DATA),
    ("E1", dict(end_adjust=False), "adjust", {"EndTime": _abs(30)}, Result.BAD_DATA),
    ("E2", dict(kind=BalanceKind.VIRTUAL), "adjust", {"EndTime": _abs(30)}, Result.BAD_DATA),
    ("E3", dict(kind=BalanceKind.PERIODIC, precision=0), "adjust", {"EndTime": "P1W"}, 0),
    ("E4", {}, "adjust", {"EndTime": _abs(-1)}, Result.BAD_DATA),
    ("E7", dict(end_days=5), "adjust", {"EndTime": "P4W"}, Result.OK),
    ("E7", dict(end_days=5), "adjust", {"EndTime": "-P6D"}, Result.BAD_DATA),
    ("E9", dict(private=True, end_days=5), "adjust", {"EndTime": "P4W"}, Result.BAD_DATA),
    ("E9", dict(private=True, end_days=5), "topup", {"EndTime": "P4W"}, Result.OK),
]


@pytest.mark.parametrize(
    ("rule", "balance_kwargs", "operation", "fields", "result"),
    RULES,
    ids=[f"{case[0]}-{case[2]}-{n}" for n, case in enumerate(RULES)],
)
def test_every_rule_answers_its_result_through_http(
    vms, rule, balance_kwargs, operation, fields, result
):
    balance = make_balance(**balance_kwargs)
    before = snapshot()

    if operation == "topup":
        fields = {"Amount": "1.0", "Voucher": f"RULE-{rule}", **fields}
        response = vms.topup(balance, **fields)
    else:
        fields = {"AdjustType": "1", "Amount": "0", "Reason": f"rule {rule}", **fields}
        response = vms.adjust(balance, **fields)

    data = reply(response)
    assert data["Result"] == result, data
    if result == Result.OK:
        assert response.status_code == 200
        assert snapshot() != before
    else:
        assert response.status_code == 422
        assert f"(rule {rule})" in data["ResultText"]
        assert snapshot() == before


@pytest.mark.parametrize("rule", ["S6", "E8"])
def test_propagation_to_aggregated_balances_through_http(vms, rule):
    top = make_balance(group=True, start_days=-3, end_days=10)
    member = make_balance(start_days=-5, end_days=8, parent=top)
    fields = {"StartTime": _abs(-20)} if rule == "S6" else {"EndTime": _abs(40)}

    response = vms.adjust(member, AdjustType="1", Amount="0", Reason=rule, **fields)

    assert response.status_code == 200, reply(response)
    top_after = Balance.objects.get(pk=top.pk)
    member_after = Balance.objects.get(pk=member.pk)
    if rule == "S6":
        assert top_after.start_time == member_after.start_time < top.start_time
    else:
        assert top_after.end_time == member_after.end_time > top.end_time


@pytest.mark.parametrize("allowed", [True, False])
def test_E5_end_in_the_past_through_http_follows_the_setting(vms, settings, allowed):
    settings.ALLOW_END_TIME_IN_PAST = allowed
    balance = make_balance(start_days=-10, end_days=10)
    before = snapshot()

    response = vms.adjust(balance, AdjustType="1", Amount="0", Reason="E5", EndTime=_abs(-1))

    assert reply(response)["Result"] == (Result.OK if allowed else Result.BAD_DATA)
    assert (snapshot() == before) is not allowed


def test_E6_an_aggregated_balance_never_ends_in_the_past_through_http(vms, settings):
    settings.ALLOW_END_TIME_IN_PAST = True
    top = make_balance(group=True, end_days=10)
    member = make_balance(start_days=-10, end_days=10, parent=top)
    before = snapshot()

    response = vms.adjust(member, AdjustType="1", Amount="0", Reason="E6", EndTime=_abs(-1))

    assert_refused(response, Result.BAD_DATA, 422)
    assert snapshot() == before


# --- GET wallet ---------------------------------------------------------------------------------


def test_get_wallet_lists_the_balances(vms):
    main = make_balance(amount="12.50", resource_id=12)
    data = make_balance(
        BalanceKind.PERIODIC,
        precision=0,
        currency="MB",
        wallet=main.wallet,
        resource_id=13,
        amount="1024",
    )

    response = vms.send("GET", vms.url(subscription_ref(main)))

    assert response.status_code == 200
    got = reply(response)
    assert got["$"] == "MtxResponseWallet" and got["Result"] == 0
    records = {int(r["ResourceId"]): r for r in got["BalanceArray"]}
    assert set(records) == {12, 13}
    assert records[12]["Amount"] == "12.50" and records[12]["Currency"] == "USD"
    assert records[13]["AvailableAmount"] == "1024" and records[13]["Class"] == "periodic"
    assert data.pk


def test_get_one_balance(vms):
    main = make_balance(amount="12.50", resource_id=12)
    make_balance(wallet=main.wallet, resource_id=14)

    response = vms.send("GET", vms.url(subscription_ref(main), "/12"))

    records = reply(response)["BalanceArray"]
    assert [int(r["ResourceId"]) for r in records] == [12]


def test_get_wallet_needs_credentials_and_a_known_subscription(client, binding, external_client):
    main = make_balance()
    assert Api(client, binding).send("GET", Api(client, binding).url("1")).status_code == 401
    api = Api(client, binding, external_client)
    assert_refused(api.send("GET", api.url("ExternalId+nobody")), Result.NOT_FOUND, 404)
    assert_refused(api.send("GET", api.url(subscription_ref(main), "/77")), Result.NOT_FOUND, 404)
    viewer = Api(client, binding, UserFactory())
    assert_refused(viewer.send("GET", viewer.url(subscription_ref(main))), Result.FORBIDDEN, 403)


# --- Unexpected errors ---------------------------------------------------------------------------


def test_an_unexpected_error_is_a_500_mtx_response(vms, monkeypatch):
    def boom(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("rsgateway.views.balance_topup_external", boom)
    balance = make_balance()
    before = snapshot()

    response = vms.topup(balance, Amount="1.00", Voucher="V")

    assert_refused(response, Result.INTERNAL_ERROR, 500)
    assert snapshot() == before
    assert "boom" not in response.content.decode()


def test_the_openapi_description_is_served_with_an_example_per_result(client):
    spec = client.get("/rsgateway/openapi.json").json()

    operation = spec["paths"]["/rsgateway/data/v3/{owner}/{ref}/wallet/{resourceId}/topup"]["put"]
    examples = {
        name
        for response in operation["responses"].values()
        for name in response["content"]["application/xml"]["examples"]
    }
    assert examples == {f"Result {r}" for r in (0, -1, -4, -7, 11, 19, 10, 40, 41, 42, -17, 1)}
    assert "/rsgateway/data/json/{owner}/{ref}/wallet/{resourceId}/adjustment" in spec["paths"]
    page = client.get("/rsgateway/docs/")
    assert page.status_code == 200 and b"AccessNumber+5555555555" in page.content


# --- Round trips --------------------------------------------------------------------------------


def test_an_external_topup_costs_a_fixed_number_of_queries(
    client, external_client, django_assert_max_num_queries
):
    from rest_framework.authtoken.models import Token

    balance = make_balance()
    api = Api(client, "xml")
    api.auth = {"HTTP_AUTHORIZATION": f"Token {Token.objects.create(user=external_client).key}"}

    # credentials+client+permissions+address, throttle, balance, voucher lookup, savepoint,
    # lock, update, ledger, audit, voucher insert, release
    with django_assert_max_num_queries(11):
        response = api.topup(balance, Amount="1.00", Voucher="Q-1")

    assert response.status_code == 200


def test_get_wallet_costs_the_same_for_many_balances(vms, django_assert_max_num_queries):
    main = make_balance(resource_id=1)
    for n in range(2, 12):
        make_balance(BalanceKind.PERIODIC, precision=0, wallet=main.wallet, resource_id=n)

    with django_assert_max_num_queries(5):
        response = vms.send("GET", vms.url(subscription_ref(main)))

    assert len(reply(response)["BalanceArray"]) == 11


# --- Failures Django answers before (or around) the API's views ---------------------------------


@pytest.mark.parametrize("binding", ["xml", "json"])
def test_a_host_the_site_does_not_serve_gets_an_mtx_response_not_a_page(client, binding):
    balance = make_balance()
    before = snapshot()
    prefix = "/rsgateway/data/v3/" if binding == "xml" else "/rsgateway/data/json/"
    path = f"{prefix}subscription/{subscription_ref(balance)}/wallet/{balance.resource_id}/topup"

    response = client.put(
        path,
        body(binding, "MtxRequestSubscriberTopupBalance", {"Amount": "1.00", "Voucher": "X"}),
        content_type="application/json" if binding == "json" else "application/xml",
        HTTP_HOST="not-this-site.example",
    )

    assert response.status_code == 400
    assert reply(response)["Result"] == Result.MALFORMED
    assert response["Cache-Control"] == "no-store"
    assert snapshot() == before
    # Elsewhere it stays Django's page.
    page = client.get("/admin/", HTTP_HOST="not-this-site.example")
    assert page.status_code == 400 and page["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("binding", ["xml", "json"])
def test_a_crash_outside_the_views_handler_is_an_mtx_response(client, binding, monkeypatch):
    from rsgateway import views

    def crash(self, request, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(views.WalletView, "dispatch", crash)
    client.raise_request_exception = False
    balance = make_balance()
    prefix = "/rsgateway/data/v3/" if binding == "xml" else "/rsgateway/data/json/"

    response = client.get(f"{prefix}subscription/{subscription_ref(balance)}/wallet")

    assert response.status_code == 500
    assert reply(response)["Result"] == Result.INTERNAL_ERROR
    assert "boom" not in response.content.decode()
