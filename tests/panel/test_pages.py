"""Login, logout, password change and the dashboard of the client panel."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from cards.services.redemption import card_redeem
from tests.factories import BalanceFactory, BalanceTemplateFactory, TopUpCardFactory
from wallets.models import BalanceKind


def login(client, username, password="secret", next_url=None):
    url = "/panel/login/" + (f"?next={next_url}" if next_url else "")
    data = {"username": username, "password": password}
    if next_url is not None:
        data["next"] = next_url
    return client.post(url, data)


def test_login_lands_on_the_dashboard(client, panel_user):
    response = login(client, panel_user.username)

    assert response.status_code == 302 and response["Location"] == "/panel/"
    assert client.get("/panel/").status_code == 200


def test_login_follows_next_on_this_site(client, panel_user):
    response = login(client, panel_user.username, next_url="/panel/redeem/")

    assert response["Location"] == "/panel/redeem/"


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example/",
        "//evil.example/panel/",
        "http:/\\evil.example",
        "javascript:alert(1)",
    ],
)
def test_login_never_redirects_off_site(client, panel_user, next_url):
    response = login(client, panel_user.username, next_url=next_url)

    assert response.status_code == 302
    assert response["Location"] == "/panel/"


def test_wrong_password_is_refused_with_a_message(client, panel_user):
    response = login(client, panel_user.username, password="wrong")

    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_logout_needs_a_post_and_ends_the_session(rose):
    assert rose.get("/panel/logout/").status_code == 405

    response = rose.post("/panel/logout/")

    assert response["Location"] == "/panel/login/"
    assert rose.get("/panel/")["Location"].startswith("/panel/login/")


def test_password_change(rose, panel_user, client):
    response = rose.post(
        "/panel/password/",
        {
            "old_password": "secret",
            "new_password1": "N3w-pass-phrase",
            "new_password2": "N3w-pass-phrase",
        },
    )

    assert response["Location"] == "/panel/password/done/"
    panel_user.refresh_from_db()
    assert panel_user.check_password("N3w-pass-phrase")


def test_password_change_with_a_wrong_old_password_changes_nothing(rose, panel_user):
    response = rose.post(
        "/panel/password/",
        {
            "old_password": "nope",
            "new_password1": "N3w-pass-phrase",
            "new_password2": "N3w-pass-phrase",
        },
    )

    assert response.status_code == 200
    assert "Your old password was entered incorrectly" in response.content.decode()
    panel_user.refresh_from_db()
    assert panel_user.check_password("secret")


def test_dashboard_shows_balances_to_their_precision_with_validity(rose, subscriber, main_balance):
    minutes = BalanceTemplateFactory(name="Minutes", currency="MIN", precision=0)
    data = BalanceTemplateFactory(name="Data", currency="MB", precision=3, kind=BalanceKind.SIMPLE)
    end = timezone.now() + dt.timedelta(days=7)
    BalanceFactory(wallet=main_balance.wallet, template=minutes, amount=Decimal("120"))
    BalanceFactory(
        wallet=main_balance.wallet, template=data, amount=Decimal("1536.5"), end_time=end
    )

    page = rose.get("/panel/").content.decode()

    assert page.index(main_balance.template.name) < page.index("Minutes") < page.index("Data")
    assert 'class="num amount">0.00</td>' in page
    assert 'class="num amount">120</td>' in page
    assert 'class="num amount">1,536.500</td>' in page
    assert f"until {timezone.localtime(end):%Y-%m-%d %H:%M}" in page
    assert "with no end date" in page


def test_dashboard_lists_recent_ledger_entries_newest_first(rose, subscriber, main_balance):
    first = TopUpCardFactory(reseller=subscriber.reseller, amount=Decimal("5.00"))
    second = TopUpCardFactory(reseller=subscriber.reseller, amount=Decimal("7.50"))
    for card in (first, second):
        card_redeem(pin=card.pin, balance=main_balance, subscriber=subscriber)

    page = rose.get("/panel/").content.decode()

    history = page[page.index('id="history"') :]
    assert history.index(second.serial) < history.index(first.serial)
    assert "+7.50 USD" in history and "+5.00 USD" in history
    assert "Card redemption" in history
    assert 'class="num amount">12.50</td>' in page


def test_dashboard_does_not_show_another_subscribers_balances(rose, main_balance):
    stranger = BalanceFactory(template__name="Stranger balance", is_main=True)

    page = rose.get("/panel/").content.decode()

    assert "Stranger balance" not in page
    assert stranger.template.name not in page


def test_dashboard_has_the_redeem_form_for_one_click_recharge(rose):
    page = rose.get("/panel/").content.decode()

    assert 'action="/panel/redeem/"' in page and ">Voucher Code</label>" in page
    assert 'name="back" value="dashboard"' in page


def test_pages_work_without_any_external_asset(rose):
    page = rose.get("/panel/").content.decode()

    assert "http://" not in page and "https://" not in page
    assert "/static/panel/panel.css" in page
    assert 'name="viewport"' in page


def test_a_balance_past_its_end_is_marked_not_active(rose, main_balance):
    BalanceFactory(
        wallet=main_balance.wallet,
        template__name="Old bonus",
        start_time=timezone.now() - dt.timedelta(days=30),
        end_time=timezone.now() - dt.timedelta(days=1),
    )

    page = rose.get("/panel/").content.decode()

    row = page[page.index("Old bonus") :].split("</tr>")[0]
    assert "not active" in row
    assert "not active" not in page[: page.index("Old bonus")]


def test_dashboard_queries_do_not_grow_with_balances_and_entries(
    rose, subscriber, main_balance, django_assert_max_num_queries
):
    for index in range(5):
        BalanceFactory(wallet=main_balance.wallet, template__name=f"Extra {index}")
        card = TopUpCardFactory(reseller=subscriber.reseller)
        card_redeem(pin=card.pin, balance=main_balance, subscriber=subscriber)

    with django_assert_max_num_queries(12):
        response = rose.get("/panel/")

    assert response.content.decode().count("Card redemption") == 5


@pytest.mark.parametrize("url", ["/panel/", "/panel/redeem/", "/panel/password/"])
def test_panel_pages_forbid_foreign_scripts_forms_and_framing(rose, url):
    response = rose.get(url)

    policy = response["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "form-action 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert response["X-Frame-Options"] == "DENY"


def test_the_login_page_has_the_policy_too(client, db):
    assert "form-action 'self'" in client.get("/panel/login/")["Content-Security-Policy"]
