"""The panel refuses a dormant card with its own clear message until its box is delivered
(docs/cards.md, "Dormant until delivered")."""

import datetime as dt
import logging

import pytest
from django.utils import timezone
from django.utils.html import escape

from cards.exceptions import CardDormant
from cards.models import CardEvent, TopUpCard
from cards.models.events import CardEventKind
from cards.services.delivery import cards_deliver
from cards.services.generation import card_batch_generate
from wallets.models import Balance, LedgerEntry

pytestmark = pytest.mark.django_db
REDEEM = "/panel/redeem/"


def test_a_dormant_card_gets_a_clear_message_until_its_box_is_delivered(
    rose, reseller, main_balance, admin_user, caplog
):
    batch = card_batch_generate(
        series="5",
        quantity=3,
        amount="10.00",
        currency="USD",
        pin_length=12,
        reseller=reseller,
        expires_at=timezone.now() + dt.timedelta(days=30),
        dormant=True,
    )
    caplog.set_level(logging.DEBUG)

    refused = rose.post(REDEEM, {"code": batch.pins[0]}, follow=True)

    page = refused.content.decode()
    assert escape(CardDormant.default_message) in page and 'class="message error"' in page
    assert batch.pins[0] not in page and batch.pins[0] not in caplog.text
    assert Balance.objects.get(pk=main_balance.pk).amount == 0
    assert LedgerEntry.objects.count() == 0
    assert TopUpCard.objects.filter(activated_at__isnull=False).count() == 0
    # Refused, not counted as a wrong code: a lockout counts guesses only.
    assert CardEvent.objects.get(kind=CardEventKind.REDEEM_FAILED).changes["reason"] == "dormant"

    cards_deliver(series="5", first_number=1, last_number=1, reference="B", actor=admin_user)
    redeemed = rose.post(REDEEM, {"code": batch.pins[0]}, follow=True)

    assert 'class="message success"' in redeemed.content.decode()
    assert Balance.objects.get(pk=main_balance.pk).amount == 10
