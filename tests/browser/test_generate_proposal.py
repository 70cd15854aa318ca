"""Generate Top-Up Cards proposes the chosen reseller's series as the reseller select changes
(static/cards/generate.js, under the site's CSP), never over a series the operator typed."""

import pytest

from cards.models import CardSeries
from tests.factories import BalanceTemplateFactory, ResellerFactory, UserFactory

from .test_admin_generate_search import log_in_to_admin

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_series_follows_the_reseller_until_the_operator_types_one(desktop, screenshot):
    UserFactory(username="operator", is_staff=True, is_superuser=True)
    BalanceTemplateFactory(currency="USD")
    acme = ResellerFactory(name="Acme Telecom")
    ResellerFactory(name="Zyx Mobile")
    CardSeries.objects.create(series="58", reseller=acme)
    CardSeries.objects.create(series="12", reseller=None)
    errors = []
    # Script errors and CSP refusals; not the favicon's 404 ("Failed to load resource").
    desktop.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )

    log_in_to_admin(desktop)
    desktop.goto("/admin/cards/topupcard/generate/")
    series = desktop.locator("#id_series")
    assert series.input_value() == "59"  # no reseller chosen yet: the next free series
    desktop.select_option("#id_reseller", label="Acme Telecom")
    assert series.input_value() == "58"
    desktop.select_option("#id_reseller", label="No reseller: redeemable by every subscriber")
    assert series.input_value() == "12"
    desktop.select_option("#id_reseller", label="Zyx Mobile")
    assert series.input_value() == "59"
    screenshot(desktop, "admin-generate-proposed-series")
    series.fill("77")
    desktop.select_option("#id_reseller", label="Acme Telecom")

    assert series.input_value() == "77"
    assert errors == []  # no CSP violation, no script error
