"""A subscriber recharges in a real browser, on a phone-sized screen (issue 5)."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission

from cards import pins
from cards.services.redemption import card_redeem
from tests.factories import BalanceFactory, SubscriberFactory, TopUpCardFactory, WalletFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def rose():
    subscriber = SubscriberFactory(name="Rose Orig", user__username="rose")
    balance = BalanceFactory(
        wallet=WalletFactory(subscription__subscriber=subscriber),
        resource_id=12,
        is_main=True,
        template__name="Main USD",
    )
    subscriber.user.user_permissions.add(Permission.objects.get(codename="redeem_card"))
    subscriber.balance = balance
    return subscriber


class Clicks:
    """Counts what the subscriber clicks or taps; typing is not a click."""

    def __init__(self, page):
        self.page = page
        self.count = 0

    def __call__(self, selector: str) -> None:
        self.count += 1
        self.page.locator(selector).click()


def log_in(page, username="rose", password="secret", screenshot=None):
    page.goto("/panel/")
    assert page.url.endswith("/panel/login/?next=/panel/")
    if screenshot:
        screenshot(page, "panel-phone-login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/panel/")


def redeem(page, click, code):
    page.get_by_label("Voucher Code").fill(code)
    click("button:has-text('Redeem')")
    page.wait_for_selector(".message")
    return page.locator(".message").first.inner_text()


def spaced(pin):
    return " ".join(pin[i : i + 4] for i in range(0, len(pin), 4))


def test_a_subscriber_recharges_from_a_phone_in_one_click_after_login(phone, rose, screenshot):
    card = TopUpCardFactory(reseller=rose.reseller, amount=Decimal("25.00"))
    log_in(phone, screenshot=screenshot)
    screenshot(phone, "panel-phone-dashboard")
    click = Clicks(phone)

    message = redeem(phone, click, spaced(card.pin))

    assert message == (
        f"Voucher {card.serial} redeemed: 25.00 USD added. Your balance is now 25.00 USD."
    )
    assert click.count < 3
    balances = phone.locator("#balances")
    assert "25.00" in balances.inner_text() and "USD" in balances.inner_text()
    assert card.serial in phone.locator("#history").inner_text()
    # Usable on a phone: nothing wider than the screen, the button big enough to tap.
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    button = phone.get_by_role("button", name="Redeem").bounding_box()
    assert button["height"] >= 40 and button["width"] >= 300
    assert card.pin not in phone.url and card.pin not in phone.content()
    screenshot(phone, "panel-phone-redeemed")
    rose.balance.refresh_from_db()
    assert rose.balance.amount == Decimal("25.00")


def test_a_used_pin_is_refused_with_its_message(phone, rose, screenshot):
    card = TopUpCardFactory(reseller=rose.reseller)
    neighbour = SubscriberFactory(reseller=rose.reseller)
    card_redeem(
        pin=card.pin,
        balance=BalanceFactory(wallet=WalletFactory(subscription__subscriber=neighbour)),
        subscriber=neighbour,
    )
    log_in(phone)

    message = redeem(phone, Clicks(phone), card.pin)

    assert message == "This voucher has already been used."
    screenshot(phone, "panel-phone-used-pin")
    rose.balance.refresh_from_db()
    assert rose.balance.amount == 0


def test_typing_again_a_pin_one_redeemed_shows_the_earlier_redemption(phone, rose):
    card = TopUpCardFactory(reseller=rose.reseller)
    log_in(phone)
    click = Clicks(phone)
    redeem(phone, click, card.pin)

    message = redeem(phone, click, card.pin)

    assert message.startswith(f"Voucher {card.serial} redeemed earlier by you (")
    assert message.endswith("10.00 USD was added then. Your balance is now 10.00 USD.")
    rose.balance.refresh_from_db()
    assert rose.balance.amount == Decimal("10.00")


def test_five_bad_pins_lock_redemption_and_say_until_when(phone, rose, screenshot):
    card = TopUpCardFactory(reseller=rose.reseller)
    log_in(phone)
    phone.goto("/panel/redeem/")
    click = Clicks(phone)
    for _ in range(5):
        assert redeem(phone, click, pins.generate_pin(12)) == "No voucher matches this code."

    message = redeem(phone, click, card.pin)

    assert message.startswith("Too many wrong voucher codes. Redemption is locked until ")
    assert phone.locator("#main-balance").inner_text() == "0.00 USD"
    screenshot(phone, "panel-phone-locked")
    card.refresh_from_db()
    assert card.activated_at is None


def test_a_login_without_the_right_sees_not_allowed(desktop, rose, screenshot):
    other = SubscriberFactory(name="No Rights", user__username="norights")
    log_in(desktop, username=other.user.username)

    desktop.goto("/panel/redeem/")

    assert desktop.locator("h1").inner_text() == "Not allowed"
    assert "not allowed to redeem vouchers" in desktop.locator("#forbidden-reason").inner_text()
    screenshot(desktop, "panel-desktop-not-allowed")


def test_the_dashboard_on_a_desktop(desktop, rose, screenshot):
    log_in(desktop)

    assert desktop.locator("h1").inner_text() == "Hello, Rose Orig"
    assert desktop.locator("#balances").is_visible()
    screenshot(desktop, "panel-desktop-dashboard")
