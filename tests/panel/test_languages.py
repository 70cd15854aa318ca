"""The client panel in the subscriber's language (docs/panel.md, "Languages")."""

import datetime as dt
import gettext
from decimal import Decimal
from pathlib import Path

import polib
import pytest
from django.conf import settings
from django.test.utils import override_script_prefix
from django.utils import timezone, translation

from cards import exceptions as card_errors
from cards.lockout import locked_message
from cards.services.redemption import card_redeem
from common.formats import format_amount, format_datetime
from common.login_guard import locked_message as login_locked_message
from subscribers.models import Subscriber
from tests.factories import TopUpCardFactory, UserFactory
from wallets.models import LedgerEntry

LOCALE = Path(settings.BASE_DIR) / "locale"
TRANSLATED = [code for code, _ in settings.LANGUAGES if code != "en"]
CATALOGS = {code: LOCALE / code / "LC_MESSAGES" / "django.po" for code in TRANSLATED}


def redeem(client, code, back="redeem"):
    return client.post("/panel/redeem/", {"code": code, "back": back}, follow=True)


def message(response) -> str:
    return next(iter(response.context["messages"])).message


# --- the catalogs --------------------------------------------------------------------------


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_panel_string_is_translated_none_empty_or_fuzzy(language):
    catalog = polib.pofile(str(CATALOGS[language]))

    assert len(catalog) > 50
    assert [entry.msgid for entry in catalog.untranslated_entries()] == []
    assert [entry.msgid for entry in catalog.fuzzy_entries()] == []
    assert [entry.msgid for entry in catalog.obsolete_entries()] == []
    assert not catalog.metadata_is_fuzzy and catalog.metadata["Language"] == language


@pytest.mark.parametrize("language", TRANSLATED)
def test_each_translation_keeps_the_placeholders_of_its_english_text(language):
    for entry in polib.pofile(str(CATALOGS[language])):
        placeholders = sorted(p for p in entry.msgid.split("%(")[1:])
        names = sorted(p.split(")")[0] for p in placeholders)
        found = sorted(p.split(")")[0] for p in entry.msgstr.split("%(")[1:])
        assert found == names, entry.msgid


@pytest.mark.parametrize("language", TRANSLATED)
def test_the_committed_mo_file_is_compiled_from_the_po_file(language):
    """`make run` reads the committed .mo (no gettext on a fresh machine): it must say what the
    .po says. After editing a .po, `make messages` compiles it."""
    po = polib.pofile(str(CATALOGS[language]))
    with open(CATALOGS[language].with_suffix(".mo"), "rb") as compiled:
        mo = gettext.GNUTranslations(compiled)

    assert {entry.msgid: mo.gettext(entry.msgid) for entry in po} == {
        entry.msgid: entry.msgstr for entry in po
    }


REDEMPTION_MESSAGES = [
    card_errors.CardCodeInvalid,
    card_errors.CardNotFound,
    card_errors.CardAlreadyRedeemed,
    card_errors.CardExpired,
    card_errors.CardBlocked,
    card_errors.CardWrongReseller,
    card_errors.CardCurrencyMismatch,
    card_errors.NoMainBalance,
    card_errors.RedemptionLocked,
    card_errors.RedemptionAddressUnknown,
    card_errors.RedemptionBusy,
    card_errors.CardDormant,
]


@pytest.mark.parametrize("language", TRANSLATED)
@pytest.mark.parametrize("error", REDEMPTION_MESSAGES, ids=lambda error: error.__name__)
def test_every_redemption_outcome_the_panel_shows_has_a_translation(language, error):
    with translation.override(language):
        assert translation.gettext(error.default_message) != error.default_message


# --- which language ------------------------------------------------------------------------


def test_the_browser_language_is_followed_before_any_choice(client, db):
    page = client.get("/panel/login/", headers={"accept-language": "es-MX,es;q=0.9,en;q=0.5"})

    assert '<html lang="es"' in page.content.decode()
    assert "Iniciar sesión" in page.content.decode()
    assert page["Content-Language"] == "es"
    assert "Accept-Language" in page["Vary"]


def test_an_unknown_browser_language_gets_english(client, db):
    page = client.get("/panel/login/", headers={"accept-language": "de-DE,de;q=0.9"})

    assert '<html lang="en"' in page.content.decode() and "Log in" in page.content.decode()


def test_the_saved_preference_beats_the_browser_language(rose, subscriber):
    Subscriber.objects.filter(pk=subscriber.pk).update(language="fr")

    page = rose.get("/panel/", headers={"accept-language": "es"}).content.decode()

    assert '<html lang="fr"' in page
    assert "Soldes" in page and "Saldos" not in page


def test_the_saved_preference_beats_the_language_cookie_too(rose, subscriber):
    Subscriber.objects.filter(pk=subscriber.pk).update(language="fr")
    rose.cookies[settings.LANGUAGE_COOKIE_NAME] = "es"

    page = rose.get("/panel/redeem/").content.decode()

    assert "Recharger avec une carte" in page


def test_choosing_a_language_in_the_panel_saves_it_on_the_subscriber(rose, subscriber):
    response = rose.post(
        "/panel/language/",
        {"language": "es", "next": "/panel/redeem/"},
        headers={"accept-language": "fr"},
    )

    assert response.status_code == 302 and response["Location"] == "/panel/redeem/"
    subscriber.refresh_from_db()
    assert subscriber.language == "es"
    # Saved on the account: another browser, asking for French, gets Spanish after logging in.
    other = rose.__class__()
    other.force_login(subscriber.user)
    assert (
        "Canjear tarjeta"
        in other.get("/panel/", headers={"accept-language": "fr"}).content.decode()
    )


def test_the_login_page_choice_is_a_cookie_and_saves_nothing(client, subscriber):
    response = client.post("/panel/language/", {"language": "fr", "next": "/panel/login/"})

    assert response["Location"] == "/panel/login/"
    cookie = response.cookies[settings.LANGUAGE_COOKIE_NAME]
    assert cookie.value == "fr" and cookie["path"] == "/panel/" and cookie["httponly"]
    assert "Se connecter" in client.get("/panel/login/").content.decode()
    subscriber.refresh_from_db()
    assert subscriber.language == ""


@pytest.mark.parametrize("language", ["de", "", "en-us", "es<script>"])
def test_a_language_the_panel_does_not_speak_is_refused_and_nothing_changes(
    rose, subscriber, language
):
    response = rose.post("/panel/language/", {"language": language, "next": "/panel/"})

    assert response.status_code == 400
    assert settings.LANGUAGE_COOKIE_NAME not in response.cookies
    subscriber.refresh_from_db()
    assert subscriber.language == ""


@pytest.mark.parametrize(
    "next_url", ["https://evil.example/panel/", "//evil.example/panel/", "/admin/", ""]
)
def test_the_language_switch_goes_back_only_to_a_panel_page(rose, next_url):
    response = rose.post("/panel/language/", {"language": "es", "next": next_url})

    assert response["Location"] == "/panel/"


def test_the_language_switch_needs_the_csrf_token(subscriber):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(subscriber.user)

    response = client.post("/panel/language/", {"language": "fr", "next": "/panel/"})

    assert response.status_code == 403
    subscriber.refresh_from_db()
    assert subscriber.language == ""


def test_a_login_without_a_subscriber_cannot_save_a_language(client, db):
    staff = UserFactory(is_staff=True)
    client.force_login(staff)

    response = client.post("/panel/language/", {"language": "fr", "next": "/panel/"})

    assert response.status_code == 302
    assert not Subscriber.objects.exclude(language="").exists()


def test_the_admin_stays_english_whatever_the_browser_or_the_cookie(admin_client):
    admin_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "es"

    page = admin_client.get("/admin/", headers={"accept-language": "es"})

    assert '<html lang="en-us"' in page.content.decode()
    assert "Log out" in page.content.decode() and "Cerrar sesión" not in page.content.decode()


def test_a_site_mounted_below_a_prefix_still_translates_its_panel(client, db):
    # As gunicorn behind a proxy that mounts the site at /topup/ (WSGIHandler sets the
    # prefix from SCRIPT_NAME; the test client does not, hence the override).
    with override_script_prefix("/topup/"):
        page = client.get("/panel/login/", SCRIPT_NAME="/topup", headers={"accept-language": "es"})

    assert page.status_code == 200 and "Iniciar sesión" in page.content.decode()


def test_a_server_whose_urls_have_no_panel_answers_its_own_pages(client, db, settings):
    # A server of the API alone (or the bench's baseline) keeps the project's middleware:
    # the panel's language lookup must not turn each of its requests into a 500.
    settings.ROOT_URLCONF = "tests.panel.urls_without_panel"

    page = client.get("/ping/", headers={"accept-language": "es"})

    assert page.status_code == 200 and page.content == b"pong"
    assert "Content-Language" not in page


def test_a_panel_request_in_spanish_leaves_the_next_request_english(rose, subscriber):
    Subscriber.objects.filter(pk=subscriber.pk).update(language="es")
    rose.get("/panel/")

    assert translation.get_language() == settings.LANGUAGE_CODE
    assert locked_message(timezone.now()).startswith("Too many wrong voucher codes.")


# --- what the subscriber reads -------------------------------------------------------------


def test_the_own_retry_in_french_says_when_in_french(rose, subscriber, main_balance, card):
    Subscriber.objects.filter(pk=subscriber.pk).update(language="fr")
    redeem(rose, card.pin)

    text = message(redeem(rose, card.pin))

    assert text.startswith(f"Vous avez déjà utilisé la carte {card.serial} (")
    assert text.endswith(
        ": 10,00 USD ont été crédités à ce moment-là. Votre solde est maintenant de 10,00 USD."
    )
    main_balance.refresh_from_db()
    assert main_balance.amount == Decimal("10.00")


def test_a_redemption_in_spanish_reads_in_spanish_with_spanish_amounts(
    rose, subscriber, main_balance
):
    Subscriber.objects.filter(pk=subscriber.pk).update(language="es")
    card = TopUpCardFactory(reseller=subscriber.reseller, amount=Decimal("1234.50"))

    response = redeem(rose, card.pin, back="dashboard")

    assert message(response) == (
        f"Tarjeta {card.serial} canjeada: se han abonado 1\xa0234,50 USD. "
        "Su saldo es ahora de 1\xa0234,50 USD."
    )
    main_balance.refresh_from_db()
    assert main_balance.amount == Decimal("1234.50")
    history = response.content.decode()
    assert "Canje de tarjeta" in history


def test_a_refusal_in_french_changes_nothing(rose, subscriber, main_balance, card):
    Subscriber.objects.filter(pk=subscriber.pk).update(language="fr")
    card_redeem(pin=card.pin, balance=main_balance, subscriber=subscriber)  # used, not by rose
    entries = LedgerEntry.objects.count()

    response = redeem(rose, card.pin)

    assert message(response) == "Cette carte de recharge a déjà été utilisée."
    assert LedgerEntry.objects.count() == entries


def test_the_lockout_says_until_when_in_the_language(rose, subscriber, main_balance):
    Subscriber.objects.filter(pk=subscriber.pk).update(language="es")
    for _ in range(settings.REDEEM_LOCKOUT_FAILURES):
        redeem(rose, "4000 0000 0000 0002")
    balance = main_balance.amount

    page = rose.get("/panel/redeem/").content.decode()

    assert "El canje está bloqueado hasta el " in page
    main_balance.refresh_from_db()
    assert main_balance.amount == balance


def test_dates_and_amounts_follow_the_language():
    moment = dt.datetime(2025, 1, 15, 14, 30, tzinfo=dt.UTC)

    assert format_datetime(moment, language="en") == "2025-01-15 14:30"
    assert format_datetime(moment, language="es") == "15/01/2025 14:30"
    assert format_datetime(moment, language="fr") == "15/01/2025 14:30"
    amount = Decimal("1234567.5")
    assert format_amount(amount, 2) == "1,234,567.50"
    assert format_amount(amount, 2, language="en") == "1,234,567.50"
    assert format_amount(amount, 2, language="es") == "1\xa0234\xa0567,50"
    assert format_amount(Decimal("-0.125"), 2, signed=True, language="fr") == "-0,125"


def test_the_login_lock_message_is_english_outside_the_panel_and_translated_inside():
    until = dt.datetime(2025, 1, 15, 14, 30, tzinfo=dt.UTC)

    assert "paused until 2025-01-15 14:30 (UTC)" in login_locked_message(until)
    with translation.override("fr"):
        assert "suspendue jusqu’au 15/01/2025 14:30 (UTC)" in login_locked_message(until)


def test_each_language_of_the_switch_is_named_in_itself(client, db):
    page = client.get("/panel/login/", headers={"accept-language": "fr"}).content.decode()

    for code, name in [("en", "English"), ("es", "Español"), ("fr", "Français")]:
        assert f'lang="{code}" class="link"' in page and f">{name}</button>" in page
