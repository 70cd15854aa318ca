"""The client panel in each of its languages, in a real browser (issue 17): a redemption that
succeeds and one that is refused, with a screenshot of each."""

from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission

from cards.services.redemption import card_redeem
from tests.factories import BalanceFactory, SubscriberFactory, TopUpCardFactory, WalletFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# What each language shows: the login button, the redeem button, the outcomes.
PANEL = {
    "en": {
        "login": "Log in",
        "username": "Username",
        "password": "Password",
        "code": "Voucher Code",
        "redeem": "Redeem",
        "success": "Voucher {serial} redeemed: 1,234.50 USD added. "
        "Your balance is now 1,234.50 USD.",
        "used": "This voucher has already been used.",
    },
    "es": {
        "login": "Iniciar sesión",
        "username": "Nombre de usuario",
        "password": "Contraseña",
        "code": "Código de la tarjeta",
        "redeem": "Canjear",
        "success": "Tarjeta {serial} canjeada: se han abonado 1\xa0234,50 USD. "
        "Su saldo es ahora de 1\xa0234,50 USD.",
        "used": "Esta tarjeta ya se ha utilizado.",
    },
    "fr": {
        "login": "Se connecter",
        "username": "Nom d’utilisateur",
        "password": "Mot de passe",
        "code": "Code de recharge",
        "redeem": "Recharger",
        "success": "Carte {serial} utilisée\xa0: 1\xa0234,50 USD crédités. "
        "Votre solde est maintenant de 1\xa0234,50 USD.",
        "used": "Cette carte de recharge a déjà été utilisée.",
    },
}


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


@pytest.fixture
def browser_in(chromium, live_server):
    contexts = []

    def open_page(language: str):
        context = chromium.new_context(
            viewport={"width": 390, "height": 844},
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
            base_url=live_server.url,
            locale=language,
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def shown(page) -> str:
    page.wait_for_selector(".message")
    return page.locator(".message").first.inner_text()


@pytest.mark.parametrize("language", [code for code, _ in settings.LANGUAGES])
def test_the_panel_in_the_browser_language_redeems_and_refuses(
    browser_in, rose, screenshot, language
):
    text = PANEL[language]
    card = TopUpCardFactory(reseller=rose.reseller, amount=Decimal("1234.50"))
    used = TopUpCardFactory(reseller=rose.reseller)
    neighbour = SubscriberFactory(reseller=rose.reseller)
    card_redeem(
        pin=used.pin,
        balance=BalanceFactory(wallet=WalletFactory(subscription__subscriber=neighbour)),
        subscriber=neighbour,
    )
    page = browser_in(language)

    page.goto("/panel/")
    assert page.locator("html").get_attribute("lang") == language
    screenshot(page, f"panel-{language}-login")
    page.get_by_label(text["username"]).fill("rose")
    page.get_by_label(text["password"], exact=True).fill("secret")
    page.get_by_role("button", name=text["login"]).click()
    page.wait_for_url("**/panel/")

    page.get_by_label(text["code"]).fill(card.pin)
    page.get_by_role("button", name=text["redeem"], exact=True).click()
    assert shown(page) == text["success"].format(serial=card.serial)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(page, f"panel-{language}-redeemed")

    page.get_by_label(text["code"]).fill(used.pin)
    page.get_by_role("button", name=text["redeem"], exact=True).click()
    assert shown(page) == text["used"]
    screenshot(page, f"panel-{language}-refused")
    rose.balance.refresh_from_db()
    assert rose.balance.amount == Decimal("1234.50")


def test_a_spanish_browser_switched_to_french_keeps_french_after_logging_in_again(
    browser_in, rose, screenshot
):
    page = browser_in("es")
    page.goto("/panel/login/")
    page.get_by_label("Nombre de usuario").fill("rose")
    page.get_by_label("Contraseña", exact=True).fill("secret")
    page.get_by_role("button", name="Iniciar sesión").click()
    page.wait_for_url("**/panel/")

    page.get_by_role("button", name="Français").click()
    page.wait_for_url("**/panel/")

    assert page.locator("h1").inner_text() == "Bonjour, Rose Orig"
    rose.refresh_from_db()
    assert rose.language == "fr"
    # Another Spanish browser: the saved choice wins once Rose has logged in.
    other = browser_in("es")
    other.goto("/panel/login/")
    other.get_by_label("Nombre de usuario").fill("rose")
    other.get_by_label("Contraseña", exact=True).fill("secret")
    other.get_by_role("button", name="Iniciar sesión").click()
    other.wait_for_url("**/panel/")
    assert other.locator("h1").inner_text() == "Bonjour, Rose Orig"
    screenshot(other, "panel-fr-saved-choice-in-a-spanish-browser")
