"""Generation and redemption services (the admin, panel and API build on these)."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from cards import pins
from cards.exceptions import (
    CardAlreadyRedeemed,
    CardBlocked,
    CardCodeInvalid,
    CardCurrencyMismatch,
    CardExpired,
    CardNotFound,
    CardWrongReseller,
    GenerationError,
)
from cards.models import CardBatch, CardEvent, TopUpCard
from cards.models.events import CardEventKind
from cards.services.generation import card_batch_generate
from cards.services.redemption import card_redeem
from tests.factories import ResellerFactory, TopUpCardFactory
from wallets.models import LedgerEntry, LedgerKind

pytestmark = pytest.mark.django_db


def generate(**overrides):
    params = {
        "series": "4",
        "quantity": 10,
        "amount": "25.00",
        "currency": "usd",
        "pin_length": 12,
        "reseller": None,
        "expires_at": timezone.now() + dt.timedelta(days=30),
    }
    params.update(overrides)
    return card_batch_generate(**params)


def test_generation_makes_sequential_serials_and_unique_valid_pins(reseller):
    result = generate(reseller=reseller)

    cards = list(TopUpCard.objects.order_by("number"))
    assert [c.serial for c in cards] == [f"4-{n:09d}" for n in range(1, 11)]
    assert len(set(result.pins)) == 10
    assert all(pins.luhn_valid(p) and len(p) == 12 for p in result.pins)
    assert {c.currency for c in cards} == {"USD"} and {c.reseller for c in cards} == {reseller}
    for card, pin in zip(cards, result.pins, strict=True):
        assert bytes(card.pin_digest) == pins.pin_digest(pin)
        assert pins.decrypt_pin(card.pin_encrypted) == pin
        assert card.batch == result.batch
    event = CardEvent.objects.get(kind=CardEventKind.GENERATED)
    assert event.changes["quantity"] == 10 and event.changes["last_serial"] == "4-000000010"


def test_generation_continues_after_the_highest_existing_number():
    TopUpCardFactory(series="4", number=41, reseller=None)

    generate(quantity=3)

    assert sorted(TopUpCard.objects.filter(series="4").values_list("number", flat=True)) == [
        41,
        42,
        43,
        44,
    ]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"series": "4a"}, "series"),
        ({"series": "1234567"}, "series"),
        ({"quantity": 0}, "quantity"),
        ({"quantity": 1_000_001}, "quantity"),
        ({"amount": "0"}, "amount"),
        ({"amount": "1.234"}, "amount"),
        ({"amount": "abc"}, "amount"),
        ({"currency": "US"}, "currency"),
        ({"pin_length": 4}, "pin_length"),
        ({"pin_length": 21}, "pin_length"),
        ({"expires_at": timezone.now() - dt.timedelta(days=1)}, "expires_at"),
        ({"pin_length": 6, "quantity": 11}, "pin_length"),  # 10^5 / 10,000 = 10 cards at most
    ],
)
def test_bad_generation_requests_are_refused_and_change_nothing(overrides, field):
    with pytest.raises(GenerationError) as error:
        generate(**overrides)

    assert error.value.field == field
    assert TopUpCard.objects.count() == 0 and CardBatch.objects.count() == 0


def test_pin_space_rule_counts_the_live_cards_already_there():
    generate(pin_length=6, quantity=10)

    with pytest.raises(GenerationError, match="10 exist already"):
        generate(pin_length=6, quantity=1)


def test_series_full_is_refused():
    TopUpCardFactory(series="7", number=999_999_999, reseller=None)

    with pytest.raises(GenerationError, match="room for only 0"):
        generate(series="7", quantity=1)


def test_a_pin_that_an_existing_card_has_is_replaced(monkeypatch):
    existing = TopUpCardFactory(series="1")
    real = pins.generate_pin
    handed_out = iter([existing.pin])
    monkeypatch.setattr(pins, "generate_pin", lambda length: next(handed_out, None) or real(length))

    result = generate(quantity=3)

    assert existing.pin not in result.pins
    assert TopUpCard.objects.filter(series="4").count() == 3
    for pin in result.pins:
        assert TopUpCard.objects.filter(pin_digest=pins.pin_digest(pin)).count() == 1


# --- redemption ---------------------------------------------------------------------------


def test_redeem_credits_main_balance_activates_card_and_audits(main_balance, subscriber):
    card = TopUpCardFactory(amount=Decimal("15.00"), reseller=subscriber.reseller)
    typed = " ".join(card.pin[i : i + 4] for i in range(0, 12, 4))

    redemption = card_redeem(pin=typed, balance=main_balance, subscriber=subscriber)

    card.refresh_from_db()
    main_balance.refresh_from_db()
    assert main_balance.amount == Decimal("15.00") == redemption.balance.amount
    assert card.activated_by == subscriber and card.activated_at is not None
    entry = LedgerEntry.objects.get()
    assert (entry.kind, entry.voucher, entry.amount) == (
        LedgerKind.REDEMPTION,
        card.serial,
        Decimal("15.00"),
    )
    assert card.ledger_entry == entry
    assert CardEvent.objects.filter(kind=CardEventKind.REDEEMED, card=card).exists()


def _card_for(subscriber, **fields):
    return TopUpCardFactory(reseller=subscriber.reseller, **fields)


@pytest.mark.parametrize(
    ("make_pin", "error"),
    [
        (lambda s: "452428293854", CardCodeInvalid),
        (lambda s: pins.generate_pin(12), CardNotFound),
        (lambda s: _card_for(s, blocked=True).pin, CardBlocked),
        (
            lambda s: _card_for(s, expires_at=timezone.now() - dt.timedelta(minutes=1)).pin,
            CardExpired,
        ),
        (lambda s: TopUpCardFactory(reseller=ResellerFactory(name="Other")).pin, CardWrongReseller),
        (lambda s: _card_for(s, currency="EUR").pin, CardCurrencyMismatch),
    ],
)
def test_redeem_failures_change_nothing_and_are_audited(main_balance, subscriber, make_pin, error):
    pin = make_pin(subscriber)
    cards_before = list(TopUpCard.objects.values_list("pk", "activated_at"))

    with pytest.raises(error) as raised:
        card_redeem(pin=pin, balance=main_balance, subscriber=subscriber, ip_address="10.0.0.1")

    main_balance.refresh_from_db()
    assert main_balance.amount == 0 and not LedgerEntry.objects.exists()
    assert list(TopUpCard.objects.values_list("pk", "activated_at")) == cards_before
    failure = CardEvent.objects.get(kind=CardEventKind.REDEEM_FAILED)
    assert failure.changes == {"reason": error.code}
    assert failure.subscriber == subscriber and failure.ip_address == "10.0.0.1"
    assert pin not in raised.value.message


def test_second_redemption_of_a_card_is_refused(main_balance, subscriber):
    card = _card_for(subscriber)
    card_redeem(pin=card.pin, balance=main_balance, subscriber=subscriber)

    with pytest.raises(CardAlreadyRedeemed):
        card_redeem(pin=card.pin, balance=main_balance, subscriber=subscriber)

    main_balance.refresh_from_db()
    assert main_balance.amount == card.amount
    assert LedgerEntry.objects.count() == 1


def test_card_without_reseller_is_redeemable_by_anyone(main_balance, subscriber):
    card = TopUpCardFactory(reseller=None)

    card_redeem(pin=card.pin, balance=main_balance, subscriber=subscriber)

    main_balance.refresh_from_db()
    assert main_balance.amount == card.amount
