"""Redeem Voucher through the panel (docs/panel.md): every outcome, every right, nothing leaks."""

import datetime as dt
import logging
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import escape

from cards import pins
from cards.exceptions import (
    CardAlreadyRedeemed,
    CardBlocked,
    CardCodeInvalid,
    CardCurrencyMismatch,
    CardExpired,
    CardNotFound,
    CardWrongReseller,
    NoMainBalance,
)
from cards.models import CardEvent, TopUpCard
from cards.models.events import CardEventKind
from cards.services.reversal import card_reverse
from tests.factories import (
    ResellerFactory,
    SubscriberFactory,
    TopUpCardFactory,
    UserFactory,
)
from tests.panel.conftest import grant_redeem
from wallets.models import Balance, LedgerEntry

REDEEM = "/panel/redeem/"


def spaced(pin: str) -> str:
    return " ".join(pin[i : i + 4] for i in range(0, len(pin), 4))


def snapshot():
    """Everything a redemption may change."""
    return (
        list(Balance.objects.order_by("pk").values_list("pk", "amount")),
        list(TopUpCard.objects.order_by("pk").values_list("pk", "activated_at", "activated_by")),
        LedgerEntry.objects.count(),
        CardEvent.objects.filter(kind=CardEventKind.REDEEMED).count(),
    )


def redeem(client, code, back="redeem"):
    return client.post(REDEEM, {"code": code, "back": back}, follow=True)


def test_valid_pin_typed_with_spaces_credits_the_main_balance(
    rose, subscriber, card, main_balance, caplog
):
    caplog.set_level(logging.DEBUG)

    response = redeem(rose, "  " + spaced(card.pin) + " ")

    assert response.redirect_chain == [(REDEEM, 302)]
    page = response.content.decode()
    assert (
        f"Voucher {card.serial} redeemed: 10.00 USD added. Your balance is now 10.00 USD." in page
    )
    main_balance.refresh_from_db()
    card.refresh_from_db()
    assert main_balance.amount == Decimal("10.00")
    assert card.activated_by == subscriber and card.activated_at is not None
    for leak in (card.pin, spaced(card.pin)):
        assert leak not in page and leak not in caplog.text
        assert leak not in response.redirect_chain[0][0]


def test_success_message_uses_the_balance_template_precision(rose, subscriber, main_balance):
    main_balance.template.precision = 3
    main_balance.template.save()
    card = TopUpCardFactory(reseller=subscriber.reseller, amount=Decimal("1234.50"))

    response = redeem(rose, card.pin)

    assert "1,234.500 USD added. Your balance is now 1,234.500 USD." in response.content.decode()


def test_the_subscribers_own_retry_of_a_redeemed_code_says_so_and_credits_nothing(
    rose, card, main_balance
):
    # The first answer was lost (connection dropped): the subscriber types the code again.
    redeem(rose, card.pin)
    before = snapshot()
    failures = CardEvent.objects.filter(kind=CardEventKind.REDEEM_FAILED)

    response = redeem(rose, spaced(card.pin))

    page = response.content.decode()
    card.refresh_from_db()
    when = date_format(timezone.localtime(card.activated_at), "j M Y, H:i")
    assert (
        f"Voucher {card.serial} redeemed earlier by you ({when}): 10.00 USD was added then. "
        "Your balance is now 10.00 USD." in page
    )
    assert snapshot() == before
    assert not failures.exists()  # not a guess: it does not count toward the lockout


def test_a_code_redeemed_then_reversed_is_refused_on_retry(rose, card, main_balance):
    redeem(rose, card.pin)
    card_reverse(card_id=card.pk, reason="Sold by mistake")
    before = snapshot()

    page = redeem(rose, card.pin).content.decode()

    assert escape(CardAlreadyRedeemed.default_message) in page
    assert snapshot() == before


def test_redeem_from_the_dashboard_comes_back_to_the_dashboard(rose, card):
    response = redeem(rose, card.pin, back="dashboard")

    assert response.redirect_chain == [("/panel/", 302)]
    assert "Your balance is now 10.00 USD" in response.content.decode()


def _card_for(subscriber, **fields):
    return TopUpCardFactory(reseller=subscriber.reseller, **fields)


def _used(subscriber):
    from cards.services.redemption import card_redeem
    from wallets.selectors import subscriber_main_balance

    card = _card_for(subscriber)
    card_redeem(pin=card.pin, balance=subscriber_main_balance(subscriber), subscriber=subscriber)
    return card.pin


@pytest.mark.parametrize(
    ("make_pin", "error"),
    [
        (lambda s: "4524 2829 3854", CardCodeInvalid),
        (lambda s: "not a code", CardCodeInvalid),
        (lambda s: pins.generate_pin(12), CardNotFound),
        (_used, CardAlreadyRedeemed),
        (
            lambda s: _card_for(s, expires_at=timezone.now() - dt.timedelta(minutes=1)).pin,
            CardExpired,
        ),
        (lambda s: _card_for(s, blocked=True).pin, CardBlocked),
        (lambda s: TopUpCardFactory(reseller=ResellerFactory(name="Other")).pin, CardWrongReseller),
        (lambda s: _card_for(s, currency="EUR").pin, CardCurrencyMismatch),
    ],
    ids=[
        "check_digit",
        "garbage",
        "not_found",
        "used",
        "expired",
        "blocked",
        "reseller",
        "currency",
    ],
)
def test_each_failure_has_its_message_and_changes_nothing(
    rose, subscriber, make_pin, error, caplog
):
    pin = make_pin(subscriber)
    before = snapshot()
    caplog.set_level(logging.DEBUG)

    response = redeem(rose, pin)

    assert response.redirect_chain == [(REDEEM, 302)]
    page = response.content.decode()
    assert escape(error.default_message) in page
    assert 'class="message error"' in page
    assert snapshot() == before
    failure = CardEvent.objects.filter(kind=CardEventKind.REDEEM_FAILED).get()
    assert failure.changes == {"reason": error.code}
    assert failure.ip_address == "127.0.0.1" and failure.channel == "panel"
    assert pins.normalize_pin(pin) not in page and pins.normalize_pin(pin) not in caplog.text


def test_without_a_main_balance_the_subscriber_is_told_and_nothing_changes(client, subscriber):
    grant_redeem(subscriber.user)
    client.force_login(subscriber.user)
    card = _card_for(subscriber)
    before = snapshot()

    response = redeem(client, card.pin)

    assert NoMainBalance.default_message in response.content.decode()
    assert snapshot() == before
    assert not CardEvent.objects.exists()


def test_empty_code_asks_for_the_code_and_is_not_counted(rose):
    response = rose.post(REDEEM, {"code": "   "})

    assert response.status_code == 400
    assert "Enter the voucher code printed on your card." in response.content.decode()
    assert not CardEvent.objects.exists()


def test_overlong_code_is_refused_without_echoing_it(rose):
    typed = "1234567890" * 7

    response = rose.post(REDEEM, {"code": typed})

    assert response.status_code == 400
    assert typed not in response.content.decode()
    assert not CardEvent.objects.exists()


def test_refreshing_after_a_redemption_does_not_post_again(rose, card, main_balance):
    redeem(rose, card.pin)

    response = rose.get(REDEEM)

    assert response.status_code == 200
    main_balance.refresh_from_db()
    assert main_balance.amount == Decimal("10.00")
    assert CardEvent.objects.filter(kind=CardEventKind.REDEEM_FAILED).count() == 0


def test_the_redeem_page_shows_the_field_the_button_and_the_balance(rose):
    page = rose.get(REDEEM).content.decode()

    assert ">Voucher Code</label>" in page
    assert '<button type="submit" class="primary">Redeem</button>' in page
    assert 'id="main-balance">0.00 USD<' in page


# --- rights ----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/panel/", REDEEM])
def test_anonymous_visitors_are_sent_to_the_login_page(client, url):
    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"/panel/login/?next={url}"


@pytest.mark.parametrize("url", ["/panel/", REDEEM])
def test_a_login_without_a_subscriber_gets_not_allowed(client, db, url):
    user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(user)

    response = client.get(url)

    assert response.status_code == 403
    assert "Not allowed" in response.content.decode()
    assert "not linked to a subscriber account" in response.content.decode()


def test_a_subscriber_without_the_right_cannot_redeem(client, subscriber, main_balance, card):
    client.force_login(subscriber.user)
    before = snapshot()

    get = client.get(REDEEM)
    post = client.post(REDEEM, {"code": card.pin})

    for response in (get, post):
        assert response.status_code == 403
        assert "not allowed to redeem vouchers" in response.content.decode()
    assert snapshot() == before
    assert not CardEvent.objects.exists()
    dashboard = client.get("/panel/").content.decode()
    assert "Voucher Code" not in dashboard and "Redeem Voucher" not in dashboard


def test_the_right_can_come_from_a_group(client, subscriber, main_balance, card):
    from django.contrib.auth.models import Group, Permission

    group, _ = Group.objects.get_or_create(name="Subscribers")  # made by a migration
    group.permissions.add(Permission.objects.get(codename="redeem_card"))
    subscriber.user.groups.add(group)
    client.force_login(subscriber.user)

    response = redeem(client, card.pin)

    assert "Your balance is now 10.00 USD" in response.content.decode()


def test_redeem_needs_the_csrf_token(panel_user, card, main_balance):
    client = Client(enforce_csrf_checks=True)
    client.force_login(panel_user)
    before = snapshot()

    response = client.post(REDEEM, {"code": card.pin})

    assert response.status_code == 403
    assert snapshot() == before
    assert not CardEvent.objects.exists()


def test_only_get_and_post(rose):
    assert rose.put(REDEEM).status_code == 405
    assert rose.post("/panel/").status_code == 405


def test_a_subscriber_redeems_onto_their_own_balance_only(rose, subscriber, main_balance, card):
    other = SubscriberFactory(reseller=subscriber.reseller)
    from tests.factories import BalanceFactory, WalletFactory

    other_balance = BalanceFactory(
        wallet=WalletFactory(subscription__subscriber=other), resource_id=12, is_main=True
    )

    redeem(rose, card.pin)

    main_balance.refresh_from_db()
    other_balance.refresh_from_db()
    assert (main_balance.amount, other_balance.amount) == (Decimal("10.00"), Decimal("0"))


def test_an_unknown_back_value_returns_to_the_redeem_page(rose, card):
    response = rose.post(REDEEM, {"code": card.pin, "back": "https://evil.example/"})

    assert response.status_code == 302 and response["Location"] == REDEEM


def test_error_reports_never_show_the_typed_code(rose, card):
    response = rose.post(REDEEM, {"code": card.pin})

    assert response.wsgi_request.sensitive_post_parameters == ("code",)


def test_a_balance_rule_failure_is_shown_not_counted_and_changes_nothing(rose, card, main_balance):
    main_balance.start_time = timezone.now() - dt.timedelta(days=30)
    main_balance.end_time = timezone.now() - dt.timedelta(days=1)
    main_balance.save()
    before = snapshot()

    response = redeem(rose, card.pin)

    assert "The voucher could not be credited: The balance is not live" in (
        response.content.decode()
    )
    assert snapshot() == before
    assert not CardEvent.objects.exists()
