"""An operator generates a batch and then finds it with the Advanced Search (issue 5)."""

import datetime as dt
import re
from decimal import Decimal
from urllib.parse import unquote_plus

import pytest
from django.utils import timezone

from cards import pins
from cards.models import CardBatch, TopUpCard
from tests.factories import (
    BalanceTemplateFactory,
    ResellerFactory,
    TopUpCardFactory,
    UserFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_in_to_admin(page):
    page.goto("/admin/login/?next=/admin/")
    page.get_by_label("Username").fill("operator")
    page.get_by_label("Password").fill("secret")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/admin/")


def table_serials(page) -> list[str]:
    return page.locator("#result_list tbody .field-serial_number").all_inner_texts()


def rows_line(page) -> str:
    return " ".join(page.locator("#card-rows").inner_text().split())


def carries(url: str, pin: str) -> bool:
    """Whether the URL holds the PIN in any spelling (encoded, with spaces or dashes)."""
    return pin in re.sub(r"[\s-]", "", unquote_plus(url))


def advanced_search(page, landing: str, **fields):
    """Open the Advanced Search panel, fill the given inputs (by name), press Search and wait
    for the changelist the search redirects to (its URL matching the glob `landing`)."""
    panel = page.locator("details#advanced-search")
    if panel.get_attribute("open") is None:
        panel.locator("summary").click()
    for name, value in fields.items():
        panel.locator(f"[name={name}]").fill(value)
    panel.locator("input[name=_search]").click()
    page.wait_for_url(landing)


def test_an_operator_generates_a_batch_and_finds_it_with_the_advanced_search(desktop, screenshot):
    UserFactory(username="operator", is_staff=True, is_superuser=True)
    acme = ResellerFactory(name="Acme Telecom")
    BalanceTemplateFactory(currency="USD")  # cards are only in a currency a balance uses
    # Cards that must stay out of the results: earlier cards of the same series, another series.
    for number in (1, 2):
        TopUpCardFactory(series="58", number=number, reseller=acme)
    TopUpCardFactory(series="9", number=3, reseller=acme)
    requested = []
    desktop.on("request", lambda request: requested.append(request.url))
    expiry = (timezone.localtime() + dt.timedelta(days=90)).replace(microsecond=0)

    log_in_to_admin(desktop)
    desktop.goto("/admin/cards/topupcard/")
    assert rows_line(desktop).startswith("Rows 1 – 3 of 3 ")
    desktop.get_by_role("link", name="Generate Top-Up Cards").click()
    desktop.wait_for_url("**/admin/cards/topupcard/generate/")
    desktop.fill("#id_amount", "15.00")
    desktop.select_option("#id_currency", "USD")
    desktop.fill("#id_quantity", "4")
    desktop.fill("#id_series", "58")
    desktop.fill("#id_pin_length", "14")
    desktop.select_option("#id_reseller", label="Acme Telecom")
    desktop.fill("#id_expires_at", expiry.strftime("%Y-%m-%d %H:%M:%S"))
    screenshot(desktop, "admin-generate-form")
    desktop.locator("input[name=_ok]").click()

    desktop.wait_for_url("**/admin/cards/cardbatch/*/change/")
    batch = CardBatch.objects.get()
    message = desktop.locator(".messagelist .success").inner_text()
    assert message == "Generated 4 cards: 58-000000003 … 58-000000006."
    assert desktop.get_by_role("button", name="Download CSV with PINs (once)").is_visible()
    screenshot(desktop, "admin-generated-batch")
    new = list(TopUpCard.objects.filter(batch=batch).order_by("number"))
    assert [card.serial for card in new] == [f"58-{n:09d}" for n in range(3, 7)]
    assert {(c.amount, c.currency, c.reseller_id, c.pin_length, c.expires_at) for c in new} == {
        (Decimal("15.00"), "USD", acme.pk, 14, expiry)
    }

    # Back to the table: all seven cards, newest first; then only the batch, by its serial range.
    desktop.goto("/admin/cards/topupcard/")
    assert rows_line(desktop).startswith("Rows 1 – 7 of 7 ")
    advanced_search(
        desktop,
        "**/topupcard/?*serial_from=*",
        serial_from=batch.first_serial,
        serial_to=batch.last_serial,
    )
    assert "serial_from=58-000000003" in desktop.url
    assert table_serials(desktop) == [card.serial for card in reversed(new)]
    assert rows_line(desktop).startswith("Rows 1 – 4 of 4 ")
    assert desktop.locator("details#advanced-search").get_attribute("open") is not None
    screenshot(desktop, "admin-advanced-search-serial-range")

    # Reset, then search by one card's PIN, typed the way it is printed (with spaces).
    desktop.locator("details#advanced-search input[name=_reset]").click()
    desktop.wait_for_url("**/admin/cards/topupcard/")
    assert rows_line(desktop).startswith("Rows 1 – 7 of 7 ")
    wanted = new[1]
    pin = pins.decrypt_pin(wanted.pin_encrypted)
    advanced_search(
        desktop,
        "**/topupcard/?*pin_ref=*",
        pin=" ".join(pin[i : i + 4] for i in range(0, len(pin), 4)),
    )

    assert table_serials(desktop) == [wanted.serial]
    assert rows_line(desktop).startswith("Rows 1 – 1 of 1 ")
    assert "pin_ref=" in desktop.url
    assert not carries(desktop.url, pin)
    assert not [url for url in requested if carries(url, pin)]
    assert pin not in desktop.content()
    assert wanted.masked_pin in desktop.locator("#result_list").inner_text()
    screenshot(desktop, "admin-advanced-search-pin")
