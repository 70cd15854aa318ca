"""The admin as an operator reads it (issue 14, "Admin copy"), with screenshots: the login page
and header say Topup, a balance shows its amounts at the template's precision with one History,
a refused adjustment reads in plain words, and a background job reads its request in words."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission

from cards.jobs.generation import generation_job_start
from cards.jobs.mass import mass_edit_job_start
from cards.models import CardJob
from cards.models.jobs import CardJobStatus
from tests.factories import (
    BalanceTemplateFactory,
    CardBatchFactory,
    ResellerFactory,
    UserFactory,
)
from tests.wallets.conftest import make_balance
from wallets.models import BalanceKind
from wallets.services.topup import balance_topup

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EXPIRES = dt.datetime(2031, 6, 30, 12, 0, tzinfo=dt.UTC)


def log_in(page, username="operator"):
    page.goto("/admin/login/?next=/admin/")
    assert page.locator("#site-name").inner_text() == "Topup"
    assert page.title() == "Log in | Topup"
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("secret")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/admin/")


def test_a_balance_reads_like_a_product(desktop, screenshot):
    user = UserFactory(username="operator", is_staff=True, is_superuser=True)
    balance = make_balance(BalanceKind.PERIODIC, amount="177.26")
    balance_topup(balance=balance, amount=Decimal("1000000.00"), voucher="EXT-1")
    assert user.has_perm("wallets.view_balanceevent")

    desktop.goto("/admin/login/")
    screenshot(desktop, "copy-1-login")
    log_in(desktop)
    assert desktop.locator("#site-name").inner_text() == "Topup"
    desktop.goto(f"/admin/wallets/balance/{balance.pk}/change/")

    amount = desktop.locator(".field-amount_text .readonly").first.inner_text()
    assert amount == "1,000,177.26 USD"
    tools = desktop.locator("ul.object-tools")
    assert tools.get_by_role("link", name="History", exact=True).count() == 1
    assert "177.260000" not in desktop.content()
    screenshot(desktop, "copy-2-balance")

    desktop.get_by_role("link", name="Adjust amount").click()
    desktop.get_by_label("Adjustment").select_option(label="Debit")
    desktop.get_by_label("Amount").fill("2000000")
    desktop.get_by_label("Reason").fill("Too much")
    desktop.get_by_role("button", name="Adjust amount").click()
    message = desktop.locator("ul.messagelist li.error")
    assert message.inner_text().startswith("Insufficient balance")
    assert message.locator("small.result-code").inner_text() == "(Result 10)"
    screenshot(desktop, "copy-3-refused-adjustment")


def test_background_jobs_read_in_words(desktop, screenshot):
    operator = UserFactory(username="operator", is_staff=True, is_superuser=True)
    BalanceTemplateFactory(currency="USD")  # cards only in a currency some balance takes
    generation = generation_job_start(
        series="7",
        quantity=25_000,
        amount="1500.00",
        currency="USD",
        pin_length=12,
        reseller=ResellerFactory(name="Reseller 1"),
        expires_at=EXPIRES,
        actor=operator,
    )
    CardJob.objects.filter(pk=generation.pk).update(
        status=CardJobStatus.SUCCEEDED,
        done=25_000,
        batch=CardBatchFactory(series="7", first_number=1, quantity=25_000),
    )
    mass = mass_edit_job_start(
        filters={"series": "7", "status": "new"},
        expected=75_045,
        changes={"expires_at": EXPIRES, "blocked": True},
        actor=operator,
    )
    operator.user_permissions.add(Permission.objects.get(codename="view_cardjob"))

    log_in(desktop)
    desktop.goto(f"/admin/cards/cardjob/{generation.pk}/change/")
    request = desktop.locator(".job-params").inner_text()
    for text in ["25,000 cards", "1,500.00 USD", "12 digits", "Reseller 1", "06/30/2031"]:
        assert text in request
    assert "25,000 cards created: 7-000000001 … 7-000025000" in desktop.content()
    screenshot(desktop, "copy-4-generation-job")

    desktop.goto(f"/admin/cards/cardjob/{mass.pk}/change/")
    request = desktop.locator(".job-params").inner_text()
    assert "Series: 7; Status: New" in request and "75,045 cards that can change" in request
    screenshot(desktop, "copy-5-mass-edit-job")
    desktop.goto("/admin/cards/cardjob/")
    assert "Mass Edit of 75,045 cards" in desktop.content()
    screenshot(desktop, "copy-6-job-list")
