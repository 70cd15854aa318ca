"""An operator onboards a new client on one admin screen, and that client logs in to the panel and
redeems a card at once (issue 14)."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from panel.services import ONBOARDING_PERMISSIONS
from subscribers.models import Subscriber
from tests.browser.conftest import PHONE
from tests.browser.test_panel import spaced
from tests.factories import BalanceTemplateFactory, ResellerFactory, TopUpCardFactory, UserFactory
from wallets.models import Balance, BalanceKind

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "plum-Orchard-41"


def operator_session(live_server) -> dict:
    """The operator's session cookie: logged in the way tests log in (the login page and its
    lockout are not what this test is about)."""
    operator = UserFactory(username="operator", is_staff=True)
    codenames = [perm.split(".")[1] for perm in ONBOARDING_PERMISSIONS]
    operator.user_permissions.add(
        *Permission.objects.filter(codename__in=[*codenames, "view_subscriber"])
    )
    client = Client()
    client.force_login(operator)
    return {"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}


def test_an_operator_onboards_a_client_who_then_redeems_a_card(
    chromium, live_server, desktop, screenshot
):
    acme = ResellerFactory(name="Acme Telecom")
    ResellerFactory(name="Other Telecom")
    BalanceTemplateFactory(name="Main balance USD", kind=BalanceKind.SIMPLE, currency="USD")
    BalanceTemplateFactory(
        name="Monthly data MB", kind=BalanceKind.PERIODIC, currency="MB", precision=0
    )
    card = TopUpCardFactory(reseller=acme, amount=Decimal("25.00"), currency="USD")
    desktop.context.add_cookies([operator_session(live_server)])

    # From the admin index to the one screen.
    desktop.goto("/admin/")
    screenshot(desktop, "onboarding-1-admin-index")
    desktop.locator("#add-client-module").get_by_role("link", name="Add client").click()
    desktop.wait_for_url("**/admin/subscribers/subscriber/add-client/")
    screenshot(desktop, "onboarding-2-add-client-empty")

    def fill(password, numbers):
        desktop.get_by_label("Username").fill("ann")
        desktop.locator("#id_password1").fill(password)
        desktop.get_by_label("Password confirmation").fill(password)
        desktop.get_by_label("Client name").fill("Ann Example")
        desktop.get_by_label("Reseller").select_option(label="Acme Telecom")
        desktop.get_by_label("External id").fill("ann-001")
        desktop.get_by_label("Access numbers").fill(numbers)
        desktop.locator("#id_balances-0-template").select_option(
            label="Main balance USD (Simple, USD)"
        )
        desktop.locator("#id_balances-0-resource_id").fill("12")
        desktop.locator("#id_balances-1-template").select_option(
            label="Monthly data MB (Periodic, MB)"
        )
        desktop.locator("#id_balances-1-resource_id").fill("13")
        desktop.get_by_role("button", name="Add client").click()
        desktop.wait_for_load_state()

    # A first try with a common password and a mistyped number: told beside each field.
    fill("password", "555-12ab")
    errors = desktop.locator(".errorlist").all_inner_texts()
    assert any("too common" in e for e in errors)
    assert any("555-12ab is not an access number" in e for e in errors)
    assert desktop.locator(".field-password1 .errorlist").count() == 1
    assert desktop.locator(".field-access_numbers .errorlist").count() == 1
    assert not Subscriber.objects.exists()
    screenshot(desktop, "onboarding-3-add-client-errors")

    fill(PASSWORD, "5551234567")
    desktop.wait_for_url("**/admin/subscribers/subscriber/*/change/")
    message = desktop.locator(".messagelist").inner_text()
    assert "Client “Ann Example” added: login ann" in message
    assert "main balance #12 (USD). The client may redeem vouchers." in message
    screenshot(desktop, "onboarding-4-client-added")

    # The client, on their phone, logs in with what the operator gave them and redeems.
    context = chromium.new_context(
        viewport=PHONE,
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        base_url=live_server.url,
    )
    context.set_default_timeout(10_000)
    phone = context.new_page()
    try:
        phone.goto("/panel/")
        phone.get_by_label("Username").fill("ann")
        phone.get_by_label("Password").fill(PASSWORD)
        phone.get_by_role("button", name="Log in").click()
        phone.wait_for_url("**/panel/")
        phone.get_by_label("Voucher Code").fill(spaced(card.pin))
        phone.get_by_role("button", name="Redeem").click()
        phone.wait_for_selector(".message")
        assert phone.locator(".message").first.inner_text() == (
            f"Voucher {card.serial} redeemed: 25.00 USD added. Your balance is now 25.00 USD."
        )
        screenshot(phone, "onboarding-5-client-redeemed")
    finally:
        context.close()
    assert Balance.objects.get(resource_id=12).amount == Decimal("25.00")


def test_an_operator_picks_a_balances_wallet_by_searching_not_by_id(
    live_server, desktop, screenshot
):
    from tests.factories import SubscriberFactory, SubscriptionFactory, WalletFactory

    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    for name, external_id in (("Ann Example", "ann-001"), ("Bob Other", "bob-001")):
        subscription = SubscriptionFactory(
            subscriber=SubscriberFactory(name=name), external_id=external_id
        )
        WalletFactory(subscription=subscription)
    client = Client()
    client.force_login(root)
    desktop.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )

    desktop.goto("/admin/wallets/balance/add/")
    desktop.locator(".field-wallet .select2-selection").click()
    desktop.locator(".select2-search__field").fill("ann")
    from playwright.sync_api import expect

    # Waits for the search's answer: only the matching wallet is offered.
    expect(desktop.locator(".select2-results__option")).to_have_text(
        ["Wallet of ann-001 (Ann Example)"]
    )
    option = desktop.locator(".select2-results__option", has_text="ann-001")
    screenshot(desktop, "onboarding-6-balance-wallet-autocomplete")
    option.click()
    assert "ann-001" in desktop.locator(".field-wallet .select2-selection").inner_text()
