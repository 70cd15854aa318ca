"""The redemption lockout as a partner's system sees it, in both bindings (docs/panel.md).

On PostgreSQL the common top-up runs as one statement (cards.sql.redemption): it must honour
the same locks as card_redeem.
"""

from decimal import Decimal

import pytest

from cards import pins
from cards.models import CardEvent
from cards.models.events import CardEventKind
from tests.factories import TopUpCardFactory
from tests.rsgateway.api import TOPUP, Api, reply
from tests.wallets.conftest import make_balance, snapshot
from wallets.exceptions import Result
from wallets.models import Balance

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["xml", "json"])
def partner(request, client, card_client):
    return Api(client, request.param, card_client)


def amount_of(balance) -> Decimal:
    return Balance.objects.get(pk=balance.pk).amount


def card():
    return TopUpCardFactory(amount=Decimal("25.00"), reseller=None)


def results(responses):
    return [(response.status_code, reply(response)["Result"]) for response in responses]


def test_one_end_users_five_typos_do_not_stop_the_partner(partner):
    typist, other = make_balance(), make_balance()
    typos = [partner.topup(typist, Amount="25.00", Voucher=pins.generate_pin(12)) for _ in range(5)]
    valid = card()
    before = snapshot()

    locked = partner.topup(typist, Amount="25.00", Voucher=valid.pin)
    assert snapshot() == before
    served = partner.topup(other, Amount="25.00", Voucher=valid.pin)

    assert results(typos) == [(404, Result.NOT_FOUND)] * 5
    assert results([locked, served]) == [(429, Result.FORBIDDEN), (200, Result.OK)]
    assert int(locked["Retry-After"]) > 0
    assert (amount_of(typist), amount_of(other)) == (Decimal("0"), Decimal("25.00"))


def test_a_used_card_sent_again_and_again_does_not_lock_the_end_user(partner):
    balance, elsewhere = make_balance(), make_balance()
    used = card()
    partner.topup(elsewhere, Amount="25.00", Voucher=used.pin)

    again = [partner.topup(balance, Amount="25.00", Voucher=used.pin) for _ in range(6)]
    served = partner.topup(balance, Amount="25.00", Voucher=card().pin)

    assert results(again) == [(409, Result.ALREADY_REDEEMED)] * 6
    assert results([served]) == [(200, Result.OK)]


def test_a_partner_wide_burst_locks_the_partner_and_its_fast_path(partner, settings):
    settings.REDEEM_LOCKOUT_API_CLIENT_FAILURES = 6
    for _ in range(3):
        typist = make_balance()
        for _ in range(2):
            partner.topup(typist, Amount="25.00", Voucher=pins.generate_pin(12))
    fresh, valid = make_balance(), card()
    before = snapshot()

    response = partner.topup(fresh, Amount="25.00", Voucher=valid.pin)

    assert results([response]) == [(429, Result.FORBIDDEN)]
    assert snapshot() == before


def test_an_unreadable_client_address_fails_closed(partner, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    balance, valid = make_balance(), card()
    before = snapshot()

    response = partner.put(
        balance,
        "topup",
        TOPUP,
        {"Amount": "25.00", "Voucher": valid.pin},
        HTTP_X_FORWARDED_FOR="not-an-address",
    )

    assert results([response]) == [(429, Result.FORBIDDEN)]
    assert valid.pin not in response.content.decode()
    assert snapshot() == before
    event = CardEvent.objects.get(kind=CardEventKind.REDEEM_FAILED)
    assert (event.changes, event.channel) == ({"reason": "no_address"}, "rest")
