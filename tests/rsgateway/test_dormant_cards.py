"""REST refuses a dormant card with its own Result (42, HTTP 422) in both bindings, through the
one-statement top-up too (PostgreSQL), until its box is delivered (docs/rest-api.md)."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from cards.exceptions import CardDormant
from cards.models import TopUpCard
from cards.services.delivery import cards_deliver
from cards.services.generation import card_batch_generate
from cards.services.topup import card_topup_by_ref
from tests.factories import UserFactory
from tests.rsgateway.api import Api, reply
from tests.wallets.conftest import make_balance, snapshot
from wallets.exceptions import Result
from wallets.models import Channel

pytestmark = pytest.mark.django_db


def dormant_cards(quantity=3):
    return card_batch_generate(
        series="5",
        quantity=quantity,
        amount="25.00",
        currency="USD",
        pin_length=12,
        reseller=None,
        expires_at=timezone.now() + dt.timedelta(days=30),
        dormant=True,
    ).pins


@pytest.mark.parametrize("binding", ["xml", "json"])
def test_a_dormant_card_answers_42_until_its_box_is_delivered(client, binding, card_client):
    partner = Api(client, binding, card_client)
    balance = make_balance()
    pins = dormant_cards()
    before = snapshot()

    response = partner.topup(balance, Amount="25.00", Voucher=pins[1])

    data = reply(response)
    assert (response.status_code, data["Result"]) == (422, Result.VOUCHER_DORMANT)
    assert data["ResultText"] == CardDormant.default_message
    assert snapshot() == before

    cards_deliver(series="5", first_number=2, last_number=2, reference="B", actor=UserFactory())
    assert reply(partner.topup(balance, Amount="25.00", Voucher=pins[1]))["Result"] == Result.OK
    assert reply(partner.topup(balance, Amount="25.00", Voucher=pins[0]))["Result"] == (
        Result.VOUCHER_DORMANT
    )


@pytest.mark.django_db(transaction=True)
def test_card_topup_by_ref_refuses_a_dormant_card_in_one_statement_too(card_client):
    """On PostgreSQL the common top-up is one SQL statement (cards.sql.redemption): a dormant
    card must fall through it to the path that answers Result 42, never be credited."""
    balance = make_balance()
    pins = dormant_cards(2)
    ref = f"ExternalId+{balance.wallet.subscription.external_id}"
    before = snapshot()

    def top_up(pin):
        card_topup_by_ref(
            owner="subscription",
            ref=ref,
            resource_id=balance.resource_id,
            pin=pin,
            amount=Decimal("25.00"),
            actor=card_client,
            channel=Channel.REST,
            ip_address="127.0.0.1",
        )

    with pytest.raises(CardDormant):
        top_up(pins[0])
    assert snapshot() == before

    cards_deliver(series="5", first_number=1, last_number=1, reference="B", actor=UserFactory())
    top_up(pins[0])
    assert TopUpCard.objects.get(number=1).activated_at is not None
    with pytest.raises(CardDormant):
        top_up(pins[1])
