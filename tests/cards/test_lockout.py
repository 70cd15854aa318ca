"""Brute-force lockout inside card_redeem (docs/panel.md), per subscriber, client IP, API client."""

import datetime as dt
from decimal import Decimal

import pytest
from django.test import RequestFactory
from django.utils import timezone

from cards import pins
from cards.exceptions import CardNotFound, RedemptionLocked
from cards.lockout import failure_budget_status, redemption_locked_until
from cards.models import CardEvent, TopUpCard
from cards.models.events import CardEventKind
from cards.services.redemption import card_redeem
from common.http import client_ip
from tests.factories import (
    BalanceFactory,
    CardEventFactory,
    SubscriberFactory,
    TopUpCardFactory,
    UserFactory,
    WalletFactory,
)
from wallets.models import Channel, LedgerEntry

IP = "10.0.0.1"


@pytest.fixture
def other(subscriber):
    """A second subscriber of the same reseller, with a main balance."""
    person = SubscriberFactory(name="Other Person", reseller=subscriber.reseller)
    BalanceFactory(
        wallet=WalletFactory(subscription__subscriber=person), resource_id=12, is_main=True
    )
    return person


def main(subscriber):
    return subscriber.subscriptions.get().wallet.balances.get(is_main=True)


def attempt(subscriber, pin=None, *, ip=IP, channel=Channel.PANEL, actor=None):
    return card_redeem(
        pin=pin or pins.generate_pin(12),
        balance=main(subscriber),
        subscriber=subscriber,
        actor=actor,
        channel=channel,
        ip_address=ip,
    )


def fail(subscriber, times=1, **kwargs):
    for _ in range(times):
        with pytest.raises(CardNotFound):
            attempt(subscriber, **kwargs)


def card_of(subscriber, **fields):
    return TopUpCardFactory(reseller=subscriber.reseller, **fields)


def test_five_failures_lock_the_subscriber_and_a_valid_card_then_changes_nothing(
    subscriber, main_balance
):
    fail(subscriber, 5)
    card = card_of(subscriber)

    with pytest.raises(RedemptionLocked) as raised:
        attempt(subscriber, card.pin, ip="10.9.9.9")

    locked_until = raised.value.locked_until
    newest = CardEvent.objects.filter(changes__reason="not_found").latest("created_at")
    assert locked_until == newest.created_at + dt.timedelta(minutes=15)
    assert f"{locked_until:%Y-%m-%d %H:%M}" in raised.value.message
    assert raised.value.http_status == 429 and raised.value.result == -7
    main_balance.refresh_from_db()
    card.refresh_from_db()
    assert main_balance.amount == 0 and card.activated_at is None
    assert not LedgerEntry.objects.exists()
    refused = CardEvent.objects.filter(changes__reason="locked").get()
    assert (refused.subscriber, refused.ip_address, refused.serial) == (subscriber, "10.9.9.9", "")


def test_four_failures_do_not_lock(subscriber, main_balance):
    fail(subscriber, 4)
    card = card_of(subscriber)

    attempt(subscriber, card.pin)

    main_balance.refresh_from_db()
    assert main_balance.amount == card.amount


def test_an_address_over_its_limit_locks_only_those_there_who_failed_themselves(
    settings, subscriber, other, main_balance
):
    settings.REDEEM_LOCKOUT_ADDRESS_FAILURES = 5
    fail(subscriber, 3)
    fail(other, 2)

    with pytest.raises(RedemptionLocked):
        attempt(subscriber, card_of(subscriber).pin)
    with pytest.raises(RedemptionLocked):
        attempt(other, card_of(other).pin)
    # A subscriber behind the same address who typed nothing wrong redeems.
    third = SubscriberFactory(reseller=subscriber.reseller, name="Third")
    BalanceFactory(
        wallet=WalletFactory(subscription__subscriber=third), resource_id=12, is_main=True
    )
    attempt(third, card_of(third).pin)
    # From another address, the two subscribers (3 and 2 failures) are not locked.
    attempt(subscriber, card_of(subscriber).pin, ip="10.0.0.2")
    attempt(other, card_of(other).pin, ip="10.0.0.3")


def test_a_success_does_not_reset_another_subscribers_count_on_the_same_ip(
    subscriber, other, main_balance
):
    fail(other, 4, ip="10.0.0.7")
    attempt(subscriber, card_of(subscriber).pin, ip="10.0.0.7")

    fail(other, 1, ip="10.0.0.8")

    with pytest.raises(RedemptionLocked):
        attempt(other, card_of(other).pin, ip="10.0.0.9")


def test_a_success_does_not_reset_the_count_of_the_ip(settings, subscriber, other, main_balance):
    settings.REDEEM_LOCKOUT_ADDRESS_FAILURES = 5
    fail(other, 4)
    attempt(subscriber, card_of(subscriber).pin)

    fail(other, 1, ip="10.0.0.8")  # other: 5 failures in all, but only 4 from IP
    with pytest.raises(RedemptionLocked):
        attempt(other, ip="10.0.0.9")
    fail(subscriber, 1)  # IP: the 5th failure

    with pytest.raises(RedemptionLocked):
        attempt(subscriber, card_of(subscriber).pin)


def test_a_success_clears_the_subscribers_own_count(subscriber, main_balance):
    fail(subscriber, 4, ip="10.0.0.1")
    attempt(subscriber, card_of(subscriber).pin, ip="10.0.0.2")

    fail(subscriber, 4, ip="10.0.0.3")
    attempt(subscriber, card_of(subscriber).pin, ip="10.0.0.4")

    main_balance.refresh_from_db()
    assert main_balance.amount == Decimal("20.00")


def _failures(subscriber, ages_minutes, *, ip=IP, reason="not_found", channel=Channel.PANEL):
    now = timezone.now()
    for age in ages_minutes:
        CardEventFactory(
            kind=CardEventKind.REDEEM_FAILED,
            card=None,
            subscriber=subscriber,
            ip_address=ip,
            channel=channel,
            changes={"reason": reason},
            created_at=now - dt.timedelta(minutes=age),
        )


def test_the_lock_ends_fifteen_minutes_after_the_fifth_failure(subscriber, main_balance):
    _failures(subscriber, [30, 25, 22, 20, 16])  # five within 15 minutes, the last 16 min ago

    attempt(subscriber, card_of(subscriber).pin)

    main_balance.refresh_from_db()
    assert main_balance.amount == Decimal("10.00")


def test_five_failures_spread_over_more_than_fifteen_minutes_do_not_lock(subscriber, main_balance):
    _failures(subscriber, [20, 10, 8, 6, 1])  # 19 minutes from first to last

    attempt(subscriber, card_of(subscriber).pin)

    main_balance.refresh_from_db()
    assert main_balance.amount == Decimal("10.00")


def test_refused_attempts_are_audited_but_do_not_extend_the_lock(subscriber, main_balance):
    _failures(subscriber, [20, 19, 18, 17, 14])  # locked until 1 minute from now
    _failures(subscriber, [10, 5, 1], reason="locked")

    until = redemption_locked_until(
        subscriber=subscriber, actor=None, channel=Channel.PANEL, ip_address=IP
    )

    assert timezone.now() < until < timezone.now() + dt.timedelta(minutes=1, seconds=5)


def test_rest_failures_count_per_api_client_and_end_subscriber_not_per_address(
    subscriber, other, main_balance
):
    partner, vms = UserFactory(username="partner"), UserFactory(username="vms")
    fail(subscriber, 5, channel=Channel.REST, actor=partner)
    fail(other, 4, channel=Channel.REST, actor=partner)

    with pytest.raises(RedemptionLocked):
        attempt(subscriber, card_of(subscriber).pin, channel=Channel.REST, actor=partner)
    # The partner's other end users, another API client, and the panel from the same address,
    # are not locked.
    attempt(other, card_of(other).pin, channel=Channel.REST, actor=partner)
    attempt(subscriber, card_of(subscriber).pin, channel=Channel.REST, actor=vms)
    attempt(other, card_of(other).pin, channel=Channel.PANEL)


def test_a_partner_wide_burst_locks_the_api_client(settings, subscriber, other, main_balance):
    settings.REDEEM_LOCKOUT_API_CLIENT_FAILURES = 6
    partner, vms = UserFactory(username="partner"), UserFactory(username="vms")
    fail(subscriber, 3, channel=Channel.REST, actor=partner)
    fail(other, 3, channel=Channel.REST, actor=partner)
    third = SubscriberFactory(reseller=subscriber.reseller, name="Third")
    BalanceFactory(
        wallet=WalletFactory(subscription__subscriber=third), resource_id=12, is_main=True
    )

    with pytest.raises(RedemptionLocked):
        attempt(third, card_of(third).pin, channel=Channel.REST, actor=partner)
    attempt(third, card_of(third).pin, channel=Channel.REST, actor=vms)


def test_panel_failures_do_not_lock_an_api_client(subscriber, main_balance):
    partner = UserFactory(username="partner")
    fail(subscriber, 5, actor=subscriber.user)

    attempt(subscriber, card_of(subscriber).pin, channel=Channel.REST, actor=partner)

    assert TopUpCard.objects.activated().count() == 1


@pytest.mark.parametrize(
    ("proxies", "remote", "forwarded", "expected"),
    [
        (0, "192.0.2.1", "203.0.113.9", "192.0.2.1"),
        (1, "10.0.0.1", "198.51.100.1, 203.0.113.9", "203.0.113.9"),
        (2, "10.0.0.1", "198.51.100.1, 203.0.113.9, 10.0.0.2", "203.0.113.9"),
        (1, "10.0.0.1", "", "10.0.0.1"),
        (1, "10.0.0.1", "not-an-ip", None),
        (0, "::1", "", "::1"),
    ],
)
def test_client_ip_trusts_only_the_configured_proxies(
    settings, proxies, remote, forwarded, expected
):
    settings.TRUSTED_PROXY_COUNT = proxies
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)

    assert client_ip(request) == expected


def test_failure_budget_names_the_top_sources(settings, subscriber, other, main_balance):
    settings.REDEEM_FAILURE_BUDGET = 4
    partner = UserFactory(username="partner")
    _failures(subscriber, [1, 1, 1], ip="203.0.113.9")
    _failures(other, [2, 2], ip="198.51.100.7")
    _failures(other, [3], ip=None, channel=Channel.REST)
    CardEvent.objects.filter(channel=Channel.REST).update(actor=partner)
    _failures(other, [60], ip="192.0.2.50")  # outside the 10-minute window

    budget = failure_budget_status()

    assert budget.exceeded and budget.failures == 6
    assert budget.top_ips == [("203.0.113.9", 3), ("198.51.100.7", 2)]
    assert budget.top_subscribers == [("Rose Orig", 3), ("Other Person", 2)]
    assert budget.top_api_clients == [("partner", 1)]


def test_failure_budget_within_the_limit_is_quiet(settings, subscriber):
    settings.REDEEM_FAILURE_BUDGET = 4
    _failures(subscriber, [1, 2, 3, 4])

    budget = failure_budget_status()

    assert not budget.exceeded and budget.top_ips == []


def test_a_busy_api_client_may_get_a_higher_limit(settings, subscriber, main_balance):
    settings.REDEEM_LOCKOUT_API_FAILURES = 8
    partner = UserFactory(username="partner")
    fail(subscriber, 7, channel=Channel.REST, actor=partner, ip=None)
    attempt(subscriber, card_of(subscriber).pin, channel=Channel.REST, actor=partner)
    fail(subscriber, 8, channel=Channel.REST, actor=partner, ip=None)

    with pytest.raises(RedemptionLocked):
        attempt(subscriber, card_of(subscriber).pin, channel=Channel.REST, actor=partner)


def test_ipv6_guesses_are_counted_per_64_network(settings, subscriber, other, main_balance):
    settings.REDEEM_LOCKOUT_ADDRESS_FAILURES = 5
    third = SubscriberFactory(name="Third", reseller=subscriber.reseller)
    for index, person in enumerate([subscriber, subscriber, other, other, third], start=1):
        with pytest.raises(CardNotFound):
            card_redeem(
                pin=pins.generate_pin(12),
                balance=main_balance,
                subscriber=person,
                ip_address=f"2001:db8:1:2::{index:x}",
            )

    with pytest.raises(RedemptionLocked):
        attempt(other, card_of(other).pin, ip="2001:db8:1:2:ffff:ffff:ffff:fffe")
    # The neighbouring /64, and IPv4, are not locked.
    attempt(other, card_of(other).pin, ip="2001:db8:1:3::1")
    attempt(subscriber, card_of(subscriber).pin, ip="192.0.2.1")


def test_an_ipv4_mapped_address_counts_as_the_ipv4_address(settings):
    request = RequestFactory().get("/", REMOTE_ADDR="::ffff:192.0.2.7")

    assert client_ip(request) == "192.0.2.7"


def test_under_a_flood_the_budget_counts_to_a_cap_and_ranks_the_latest(
    settings, monkeypatch, subscriber
):
    from cards import lockout

    settings.REDEEM_FAILURE_BUDGET = 2
    monkeypatch.setattr(lockout, "_BUDGET_COUNT_CAP", 5)
    monkeypatch.setattr(lockout, "_BUDGET_SAMPLE", 3)
    _failures(subscriber, [9, 8, 7], ip="198.51.100.1")
    _failures(subscriber, [3, 2, 1], ip="203.0.113.9")

    budget = failure_budget_status()

    assert (budget.failures, budget.capped, budget.sampled) == (5, True, True)
    assert budget.top_ips == [("203.0.113.9", 3)]
