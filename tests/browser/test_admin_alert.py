"""An operator sees, in the admin, that vouchers are being guessed and from where."""

import pytest

from cards import pins
from cards.exceptions import CardNotFound
from cards.services.redemption import card_redeem
from tests.factories import BalanceFactory, SubscriberFactory, UserFactory, WalletFactory
from wallets.models import Channel

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_failure_budget_alert_names_the_sources(desktop, settings, screenshot):
    settings.REDEEM_FAILURE_BUDGET = 3
    UserFactory(username="operator", is_staff=True, is_superuser=True)
    guesser = SubscriberFactory(name="Mallory")
    balance = BalanceFactory(
        wallet=WalletFactory(subscription__subscriber=guesser), resource_id=12, is_main=True
    )
    for _ in range(4):
        with pytest.raises(CardNotFound):
            card_redeem(
                pin=pins.generate_pin(12),
                balance=balance,
                subscriber=guesser,
                channel=Channel.PANEL,
                ip_address="203.0.113.66",
            )

    desktop.goto("/admin/login/?next=/admin/")
    assert desktop.locator("#redemption-alert").count() == 0
    desktop.get_by_label("Username").fill("operator")
    desktop.get_by_label("Password").fill("secret")
    desktop.get_by_role("button", name="Log in").click()
    desktop.wait_for_url("**/admin/")

    alert = desktop.locator("#redemption-alert").inner_text()
    assert "4 failed redemptions in the last 10 minutes" in alert
    assert "203.0.113.66 (4)" in alert and "Mallory (4)" in alert
    screenshot(desktop, "admin-failure-budget-alert")
    desktop.get_by_role("link", name="See the failed redemptions").click()
    assert "/admin/cards/cardevent/" in desktop.url
