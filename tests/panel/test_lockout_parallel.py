"""Shared lockout counts hold under parallel requests (PostgreSQL, real threads).

Each attempt locks its own subscriber's row, so attempts of different subscribers behind one
address, or of different end users of one API client, run in parallel; the shared count is
serialised by an advisory lock (cards.lockout.attempt_lock_keys). Never more counted failures
than the limit.
"""

import threading

import pytest
from django.db import connections

from cards import pins
from cards.exceptions import CardAlreadyRedeemed, CardNotFound, RedemptionLocked
from cards.models import CardEvent
from cards.models.events import CardEventKind
from cards.services.redemption import card_redeem
from tests.factories import (
    BalanceFactory,
    SubscriberFactory,
    TopUpCardFactory,
    UserFactory,
    WalletFactory,
)
from wallets.models import Channel

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
THREADS = 10
NAT = "198.51.100.77"


def _people(count):
    people = []
    for n in range(count):
        subscriber = SubscriberFactory(name=f"Subscriber {n}")
        BalanceFactory(
            wallet=WalletFactory(subscription__subscriber=subscriber), resource_id=12, is_main=True
        )
        people.append(subscriber)
    return people


def _together(subscribers, **kwargs) -> list[str]:
    outcomes: list[str] = []
    start = threading.Barrier(len(subscribers))

    def guess(subscriber):
        try:
            balance = subscriber.subscriptions.get().wallet.balances.get()
            start.wait()
            card_redeem(pin=pins.generate_pin(12), balance=balance, subscriber=subscriber, **kwargs)
        except (CardNotFound, RedemptionLocked) as error:
            outcomes.append(error.code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=guess, args=(s,)) for s in subscribers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


def _counted(**filters) -> int:
    return CardEvent.objects.filter(
        kind=CardEventKind.REDEEM_FAILED, changes__reason="not_found", **filters
    ).count()


def test_parallel_guesses_behind_one_address_never_count_past_its_limit(settings):
    settings.REDEEM_LOCKOUT_ADDRESS_FAILURES = 5
    subscribers = _people(THREADS)
    # Each has failed once elsewhere, so the address's lock applies to each of them.
    for n, subscriber in enumerate(subscribers, start=1):
        with pytest.raises(CardNotFound):
            card_redeem(
                pin=pins.generate_pin(12),
                balance=subscriber.subscriptions.get().wallet.balances.get(),
                subscriber=subscriber,
                ip_address=f"192.0.2.{n}",
            )

    outcomes = _together(subscribers, ip_address=NAT)

    assert outcomes == ["locked"] * 5 + ["not_found"] * 5
    assert _counted(ip_address=NAT) == 5


def test_parallel_guesses_of_one_api_client_never_count_past_its_limit(settings):
    settings.REDEEM_LOCKOUT_API_CLIENT_FAILURES = 5
    partner = UserFactory(username="partner")

    outcomes = _together(
        _people(THREADS), actor=partner, channel=Channel.REST, ip_address="203.0.113.5"
    )

    assert outcomes == ["locked"] * 5 + ["not_found"] * 5
    assert _counted(actor=partner) == 5


def test_losing_races_for_cards_locks_no_one():
    partner = UserFactory(username="partner")
    first, second = _people(2)
    answers: list[str] = []

    def redeem(subscriber, pin, start):
        try:
            balance = subscriber.subscriptions.get().wallet.balances.get()
            start.wait()
            card_redeem(
                pin=pin, balance=balance, subscriber=subscriber, actor=partner, channel="rest"
            )
            answers.append("redeemed")
        except CardAlreadyRedeemed as error:
            answers.append(error.code)
        finally:
            connections.close_all()

    # Ten cards, each sent for both end users at once: one of them loses five races or more.
    for _ in range(10):
        pin = TopUpCardFactory(reseller=None).pin
        start = threading.Barrier(2)
        threads = [threading.Thread(target=redeem, args=(s, pin, start)) for s in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for subscriber in (first, second):
        card_redeem(
            pin=TopUpCardFactory(reseller=None).pin,
            balance=subscriber.subscriptions.get().wallet.balances.get(),
            subscriber=subscriber,
            actor=partner,
            channel="rest",
        )

    assert sorted(answers) == ["already_redeemed"] * 10 + ["redeemed"] * 10
    assert not CardEvent.objects.filter(changes__reason="locked").exists()
