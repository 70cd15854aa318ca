"""The lockout as a subscriber and an operator see it: the panel message, the admin alert."""

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone

from cards import pins
from cards.models import CardEvent
from cards.models.events import CardEventKind
from tests.factories import (
    BalanceFactory,
    CardEventFactory,
    SubscriberFactory,
    TopUpCardFactory,
    UserFactory,
    WalletFactory,
)
from tests.panel.conftest import grant_redeem
from tests.panel.test_redeem import REDEEM, redeem, snapshot


def test_after_five_wrong_codes_the_panel_says_until_when_and_changes_nothing(rose, card):
    for _ in range(5):
        redeem(rose, pins.generate_pin(12))
    before = snapshot()

    response = redeem(rose, card.pin)

    page = response.content.decode()
    fifth = CardEvent.objects.filter(changes__reason="not_found").latest("created_at")
    until = timezone.localtime(fifth.created_at + dt.timedelta(minutes=15))
    assert f"Redemption is locked until {until:%Y-%m-%d %H:%M} (UTC)" in page
    assert 'data-outcome="locked"' in page
    assert snapshot() == before
    card.refresh_from_db()
    assert card.activated_at is None


def test_a_guesser_on_a_shared_address_locks_no_neighbour(rose, subscriber, card):
    for _ in range(5):
        redeem(rose, pins.generate_pin(12))
    neighbour = SubscriberFactory(reseller=subscriber.reseller)
    BalanceFactory(
        wallet=WalletFactory(subscription__subscriber=neighbour), resource_id=12, is_main=True
    )
    grant_redeem(neighbour.user)
    client = Client()
    client.force_login(neighbour.user)

    same_ip = redeem(client, card.pin)

    assert "Your balance is now 10.00 USD" in same_ip.content.decode()
    assert "Redemption is locked until" in redeem(rose, card.pin).content.decode()


def _failures(count, *, ip, subscriber=None, minutes_ago=1):
    for _ in range(count):
        CardEventFactory(
            kind=CardEventKind.REDEEM_FAILED,
            card=None,
            subscriber=subscriber,
            ip_address=ip,
            channel="panel",
            changes={"reason": "not_found"},
            created_at=timezone.now() - dt.timedelta(minutes=minutes_ago),
        )


@pytest.fixture
def operator(client, db):
    client.force_login(UserFactory(username="operator", is_staff=True, is_superuser=True))
    return client


def test_operators_see_where_failed_redemptions_come_from_when_over_budget(
    operator, settings, subscriber
):
    settings.REDEEM_FAILURE_BUDGET = 5
    _failures(4, ip="203.0.113.9", subscriber=subscriber)
    _failures(2, ip="198.51.100.7")

    page = operator.get("/admin/").content.decode()

    assert 'id="redemption-alert"' in page
    assert "6 failed redemptions in the last 10 minutes" in page
    assert "203.0.113.9 (4), 198.51.100.7 (2)" in page
    assert "Rose Orig (4)" in page
    link = "/admin/cards/cardevent/?kind__exact=redeem_failed"
    assert link in page
    events = operator.get(link)
    assert events.status_code == 200 and events.context["cl"].result_count == 6


def test_no_alert_within_the_budget(operator, settings):
    settings.REDEEM_FAILURE_BUDGET = 5
    _failures(5, ip="203.0.113.9")
    _failures(50, ip="203.0.113.9", minutes_ago=11)

    page = operator.get("/admin/").content.decode()

    assert 'id="redemption-alert"' not in page


def test_the_alert_is_for_staff_only(client, settings, db):
    settings.REDEEM_FAILURE_BUDGET = 0
    _failures(3, ip="203.0.113.9")

    page = client.get("/admin/login/").content.decode()

    assert 'id="redemption-alert"' not in page and "203.0.113.9" not in page


def test_a_locked_subscriber_sees_until_when_before_typing_anything(rose):
    for _ in range(5):
        redeem(rose, pins.generate_pin(12))

    for url in ("/panel/", REDEEM):
        page = rose.get(url).content.decode()
        assert 'id="locked-notice"' in page and "Redemption is locked until" in page


def test_no_lock_notice_before_the_fifth_failure(rose):
    for _ in range(4):
        redeem(rose, pins.generate_pin(12))

    assert 'id="locked-notice"' not in rose.get(REDEEM).content.decode()


def test_a_neighbours_success_does_not_reset_a_guessers_count(rose, subscriber, card):
    neighbour = SubscriberFactory(reseller=subscriber.reseller)
    BalanceFactory(
        wallet=WalletFactory(subscription__subscriber=neighbour), resource_id=12, is_main=True
    )
    grant_redeem(neighbour.user)
    client = Client()
    client.force_login(neighbour.user)
    here = {"REMOTE_ADDR": "192.0.2.20"}
    for _ in range(4):
        rose.post(REDEEM, {"code": pins.generate_pin(12)}, REMOTE_ADDR="192.0.2.30")

    neighbour_page = client.post(REDEEM, {"code": card.pin}, follow=True, **here)
    rose.post(REDEEM, {"code": pins.generate_pin(12)}, **here)
    valid = TopUpCardFactory(reseller=subscriber.reseller)
    before = snapshot()
    rose_page = rose.post(REDEEM, {"code": valid.pin}, follow=True, REMOTE_ADDR="192.0.2.40")

    assert "Your balance is now 10.00 USD" in neighbour_page.content.decode()
    assert "Redemption is locked until" in rose_page.content.decode()
    assert snapshot() == before
