"""Lockouts that stop guessers and spare customers (docs/panel.md, docs/reliability.md).

Only guesses count; a shared address or API client stops no one who has not failed; the
legitimate crowds of docs/reliability.md (200 subscribers behind one NAT address, a partner with
10,000 end users of whom 50 mistype) lock nobody innocent.
"""

import datetime as dt

import pytest
from django.utils import timezone

from cards import pins
from cards.exceptions import (
    CardAlreadyRedeemed,
    CardAmountMismatch,
    CardBlocked,
    CardCodeInvalid,
    CardCurrencyMismatch,
    CardError,
    CardExpired,
    CardNotFound,
    RedemptionLocked,
)
from cards.models import CardEvent, TopUpCard
from cards.models.events import CardEventKind
from cards.services.redemption import card_redeem
from tests.factories import (
    BalanceFactory,
    SubscriberFactory,
    TopUpCardFactory,
    UserFactory,
    WalletFactory,
)
from wallets.models import Channel, LedgerEntry

NAT = "198.51.100.77"


def person(reseller, name):
    subscriber = SubscriberFactory(name=name, reseller=reseller)
    BalanceFactory(
        wallet=WalletFactory(subscription__subscriber=subscriber), resource_id=12, is_main=True
    )
    return subscriber


def main(subscriber):
    return subscriber.subscriptions.get().wallet.balances.get(is_main=True)


def attempt(subscriber, pin, *, ip=NAT, channel=Channel.PANEL, actor=None, **kwargs):
    return card_redeem(
        pin=pin,
        balance=main(subscriber),
        subscriber=subscriber,
        actor=actor,
        channel=channel,
        ip_address=ip,
        **kwargs,
    )


def guess(subscriber, **kwargs):
    """A wrong code: refused as not found, or by a lock once one bites."""
    with pytest.raises((CardNotFound, RedemptionLocked)) as raised:
        attempt(subscriber, pins.generate_pin(12), **kwargs)
    return raised.value.code


def counted():
    return CardEvent.objects.filter(
        kind=CardEventKind.REDEEM_FAILED, changes__reason__in=["not_found", "check_digit"]
    ).count()


def credited(subscriber):
    return LedgerEntry.objects.filter(balance=main(subscriber)).count()


# --- only guesses count -------------------------------------------------------------------


def _used(subscriber):
    card = TopUpCardFactory(reseller=subscriber.reseller)
    attempt(person(subscriber.reseller, "Earlier"), card.pin, ip="192.0.2.99")
    return card


NOT_GUESSES = {
    "already_redeemed": (_used, CardAlreadyRedeemed, {}),
    "blocked": (lambda s: TopUpCardFactory(reseller=s.reseller, blocked=True), CardBlocked, {}),
    "expired": (
        lambda s: TopUpCardFactory(
            reseller=s.reseller, expires_at=timezone.now() - dt.timedelta(days=1)
        ),
        CardExpired,
        {},
    ),
    "currency_mismatch": (
        lambda s: TopUpCardFactory(reseller=s.reseller, currency="EUR"),
        CardCurrencyMismatch,
        {},
    ),
    "amount_mismatch": (
        lambda s: TopUpCardFactory(reseller=s.reseller),
        CardAmountMismatch,
        {"expected_amount": "99.00"},
    ),
}


@pytest.mark.parametrize("channel", [Channel.PANEL, Channel.REST])
@pytest.mark.parametrize("outcome", NOT_GUESSES)
def test_a_card_that_exists_is_no_guess_and_does_not_count(
    subscriber, main_balance, outcome, channel
):
    make, error, extra = NOT_GUESSES[outcome]
    bad = make(subscriber)
    actor = UserFactory(username="partner") if channel == Channel.REST else None
    for _ in range(6):
        with pytest.raises(error):
            attempt(subscriber, bad.pin, channel=channel, actor=actor, **extra)
    good = TopUpCardFactory(reseller=subscriber.reseller)

    attempt(subscriber, good.pin, channel=channel, actor=actor)

    good.refresh_from_db()
    assert good.activated_by == subscriber and credited(subscriber) == 1
    # Audited all the same, for the operators.
    assert CardEvent.objects.filter(changes__reason=outcome).count() == 6 and counted() == 0


def test_a_bad_check_digit_is_a_guess(subscriber, main_balance):
    wrong_digit = pins.generate_pin(11) + "0"
    if pins.luhn_valid(wrong_digit):
        wrong_digit = wrong_digit[:-1] + "1"
    for _ in range(5):
        with pytest.raises(CardCodeInvalid):
            attempt(subscriber, wrong_digit)
    card = TopUpCardFactory(reseller=subscriber.reseller)

    with pytest.raises(RedemptionLocked):
        attempt(subscriber, card.pin)

    card.refresh_from_db()
    assert card.activated_at is None and credited(subscriber) == 0


# --- a shared address ---------------------------------------------------------------------


def test_200_subscribers_behind_one_nat_address_redeem_while_one_of_them_guesses(reseller):
    guesser = person(reseller, "Guesser")
    outcomes = [guess(guesser) for _ in range(12)]
    customers = [person(reseller, f"Customer {n}") for n in range(200)]
    # One in ten mistypes once before typing the code right: 20 more failures on the address.
    for customer in customers[::10]:
        guess(customer)

    for customer in customers:
        attempt(customer, TopUpCardFactory(reseller=reseller).pin)

    assert outcomes == ["not_found"] * 5 + ["locked"] * 7
    assert all(credited(customer) == 1 for customer in customers)
    with pytest.raises(RedemptionLocked):
        attempt(guesser, TopUpCardFactory(reseller=reseller).pin)


def test_over_the_address_limit_each_fresh_account_there_gets_one_guess(settings, reseller):
    settings.REDEEM_LOCKOUT_ADDRESS_FAILURES = 6
    accounts = [person(reseller, f"Account {n}") for n in range(5)]
    first_round = [guess(account) for account in accounts]  # 5 on the address
    second_round = [guess(account) for account in accounts]  # the 6th completes the count
    fresh = person(reseller, "Fresh")

    fresh_outcomes = [guess(fresh), guess(fresh)]
    elsewhere = attempt(accounts[0], TopUpCardFactory(reseller=reseller).pin, ip="192.0.2.1")

    assert first_round == ["not_found"] * 5
    assert second_round == ["not_found"] + ["locked"] * 4
    assert fresh_outcomes == ["not_found", "locked"]
    assert counted() == 7 and elsewhere.card.activated_by == accounts[0]


def test_a_subscriber_who_failed_then_redeemed_is_not_held_by_the_address(settings, reseller):
    settings.REDEEM_LOCKOUT_ADDRESS_FAILURES = 3
    neighbour = person(reseller, "Neighbour")
    guess(neighbour)
    attempt(neighbour, TopUpCardFactory(reseller=reseller).pin)
    guesser = person(reseller, "Guesser")
    for _ in range(3):
        guess(guesser)

    attempt(neighbour, TopUpCardFactory(reseller=reseller).pin)

    assert credited(neighbour) == 2


# --- an API client ------------------------------------------------------------------------


def test_a_partner_with_10000_end_users_of_whom_50_mistype_locks_nobody(reseller):
    partner = UserFactory(username="partner")
    rest = {"channel": Channel.REST, "actor": partner, "ip": "203.0.113.5"}
    # 50 end users each mistype four times in the same quarter hour (200 failures); the other
    # 9,950 are represented by 20 who type their code right.
    mistypers = [person(reseller, f"Mistyper {n}") for n in range(50)]
    for end_user in mistypers:
        for _ in range(4):
            assert guess(end_user, **rest) == "not_found"
    others = [person(reseller, f"End user {n}") for n in range(20)]

    for end_user in mistypers + others:
        attempt(end_user, TopUpCardFactory(reseller=reseller).pin, **rest)

    assert counted() == 200
    assert TopUpCard.objects.activated().count() == 70


def test_one_end_users_typos_lock_that_end_user_only(reseller):
    partner = UserFactory(username="partner")
    rest = {"channel": Channel.REST, "actor": partner, "ip": "203.0.113.5"}
    typist, other = person(reseller, "Typist"), person(reseller, "Other")
    outcomes = [guess(typist, **rest) for _ in range(6)]
    card = TopUpCardFactory(reseller=reseller)

    with pytest.raises(RedemptionLocked):
        attempt(typist, card.pin, **rest)
    attempt(other, card.pin, **rest)

    assert outcomes == ["not_found"] * 5 + ["locked"]
    card.refresh_from_db()
    assert card.activated_by == other


# --- an unreadable address ----------------------------------------------------------------


@pytest.mark.parametrize("channel", [Channel.PANEL, Channel.REST])
def test_an_unreadable_address_fails_closed_and_is_audited(subscriber, main_balance, channel):
    card = TopUpCardFactory(reseller=subscriber.reseller)
    actor = UserFactory(username="partner")

    with pytest.raises(CardError) as raised:
        attempt(subscriber, card.pin, ip=None, channel=channel, actor=actor, address_required=True)

    assert isinstance(raised.value, RedemptionLocked) and raised.value.code == "no_address"
    card.refresh_from_db()
    assert card.activated_at is None and credited(subscriber) == 0
    event = CardEvent.objects.get(kind=CardEventKind.REDEEM_FAILED)
    assert (event.changes, event.ip_address, event.actor) == ({"reason": "no_address"}, None, actor)
    assert counted() == 0
