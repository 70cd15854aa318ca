import datetime as dt
from decimal import Decimal

import pytest
from django.db import DataError, IntegrityError, transaction
from django.utils import timezone

from cards.models import TopUpCard
from cards.models.cards import CardStatus
from tests.factories import SubscriberFactory, TopUpCardFactory

pytestmark = pytest.mark.django_db


def test_serial_is_series_dash_nine_digits():
    card = TopUpCardFactory(series="3", number=4206576)

    assert str(card) == card.serial == "3-004206576"


def test_serial_is_unique_within_a_series():
    TopUpCardFactory(series="3", number=7)
    TopUpCardFactory(series="4", number=7)

    with pytest.raises(IntegrityError), transaction.atomic():
        TopUpCardFactory(series="3", number=7)


def test_pin_digest_is_unique_across_all_cards():
    card = TopUpCardFactory(series="1")

    with pytest.raises(IntegrityError), transaction.atomic():
        TopUpCardFactory(series="2", pin=card.pin)


@pytest.mark.parametrize(
    "fields",
    [
        {"series": "12a"},
        {"series": "1234567"},
        {"amount": Decimal("0")},
        {"pin_length": 4},
        {"number": 0},
        {"number": 1_000_000_000},
    ],
)
def test_database_refuses_impossible_cards(fields):
    with pytest.raises((IntegrityError, DataError)), transaction.atomic():
        TopUpCardFactory(**fields)

    assert TopUpCard.objects.count() == 0


def test_activation_needs_both_time_and_client():
    with pytest.raises(IntegrityError), transaction.atomic():
        TopUpCardFactory(activated_at=timezone.now())


def test_status_is_derived_in_order_activated_blocked_expired_new():
    now = timezone.now()
    new = TopUpCardFactory()
    expired = TopUpCardFactory(expires_at=now - dt.timedelta(seconds=1))
    blocked = TopUpCardFactory(blocked=True, expires_at=now - dt.timedelta(days=1))
    activated = TopUpCardFactory(blocked=True, activated_at=now, activated_by=SubscriberFactory())

    assert [c.status for c in (new, expired, blocked, activated)] == [
        CardStatus.NEW,
        CardStatus.EXPIRED,
        CardStatus.BLOCKED,
        CardStatus.ACTIVATED,
    ]
    annotated = dict(TopUpCard.objects.annotate_status().values_list("pk", "status"))
    assert annotated == {c.pk: c.status for c in (new, expired, blocked, activated)}
    for card in (new, expired, blocked, activated):
        assert list(TopUpCard.objects.with_status(card.status)) == [card]


def test_masked_pin_shows_only_the_last_four_digits():
    card = TopUpCardFactory(pin="452428293859")

    assert card.masked_pin == "•••• •••• 3859"
    assert "4524" not in card.masked_pin
