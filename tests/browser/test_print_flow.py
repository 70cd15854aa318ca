"""From batch to delivered box in a real browser (issue 17, docs/printing.md "the operator's
flow"), with a screenshot of each step: register a printing house, generate a dormant batch,
order its print file, download it (the printing house opens it with its private key), record
the delivery of one box, and a subscriber redeems a card of that box while a card of the box
still on its way is refused."""

import csv
import io
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission

from cards.jobs import run_print_order
from cards.models import CardBatch, PrintOrder, TopUpCard
from cards.models.cards import CardStatus
from cards.models.jobs import CardJobStatus
from cards.pins import decrypt_pin
from tests.cards.gpg_keys import needs_gpg
from tests.factories import (
    BalanceFactory,
    BalanceTemplateFactory,
    ResellerFactory,
    SubscriberFactory,
    UserFactory,
    WalletFactory,
)

pytestmark = [needs_gpg, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def printing_house(tmp_path):
    from tests.cards.gpg_keys import PrintingHouse

    house = PrintingHouse(tmp_path / "printing-house-gnupg")
    yield house
    house.close()


def log_in_to_admin(page):
    page.goto("/admin/login/?next=/admin/")
    page.get_by_label("Username").fill("operator")
    page.get_by_label("Password").fill("secret")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/admin/")


def success_message(page) -> str:
    return " ".join(page.locator(".messagelist .success").inner_text().split())


def test_an_operator_takes_a_dormant_batch_to_a_delivered_box(
    desktop, phone, printing_house, screenshot
):
    UserFactory(username="operator", is_staff=True, is_superuser=True)
    acme = ResellerFactory(name="Acme Telecom")
    BalanceTemplateFactory(currency="USD")
    fingerprint = printing_house.make_key("Acme Print <press@acme.invalid>")
    log_in_to_admin(desktop)

    # 1. The printing house, by its public key; the fingerprint to read back by phone.
    desktop.goto("/admin/cards/printer/add/")
    desktop.get_by_label("Name").fill("Acme Print")
    desktop.locator("textarea[name=public_key]").fill(printing_house.public_key(fingerprint))
    desktop.get_by_role("button", name="Register").click()
    desktop.wait_for_url("**/admin/cards/printer/*/change/")
    grouped = " ".join(fingerprint[i : i + 4] for i in range(0, len(fingerprint), 4))
    assert grouped in success_message(desktop)
    screenshot(desktop, "print-1-printing-house")

    # 2. A dormant batch: generated, shown as dormant, none of it redeemable.
    desktop.goto("/admin/cards/topupcard/generate/")
    desktop.fill("#id_amount", "10.00")
    desktop.select_option("#id_currency", "USD")
    desktop.fill("#id_quantity", "6")
    desktop.fill("#id_series", "44")
    desktop.fill("#id_pin_length", "12")
    desktop.select_option("#id_reseller", label="Acme Telecom")
    desktop.get_by_label("Dormant until delivered").check()
    screenshot(desktop, "print-2-generate-dormant")
    desktop.locator("input[name=_ok]").click()
    desktop.wait_for_url("**/admin/cards/cardbatch/*/change/")
    batch = CardBatch.objects.get()
    cards = list(TopUpCard.objects.filter(batch=batch).order_by("number"))
    assert {card.status for card in cards} == {CardStatus.DORMANT}
    desktop.goto(f"/admin/cards/topupcard/?batch__id__exact={batch.pk}")
    assert desktop.locator("#result_list").inner_text().count("Dormant") == 6
    screenshot(desktop, "print-3-dormant-cards")

    # 3. The print order, made by the worker (run here as the worker runs it).
    desktop.goto("/admin/cards/printorder/add/")
    desktop.get_by_label("Printing house").select_option(label="Acme Print")
    desktop.get_by_label("Batch").select_option(value=str(batch.pk))
    desktop.get_by_role("button", name="Order").click()
    desktop.wait_for_url("**/admin/cards/printorder/*/change/")
    assert "Print order" in success_message(desktop) and "6 cards" in success_message(desktop)
    order = PrintOrder.objects.get()
    run_print_order.call(order.pk)
    order.refresh_from_db()
    assert order.status == CardJobStatus.SUCCEEDED, order.error
    desktop.reload()
    assert order.sha256 in desktop.content()
    screenshot(desktop, "print-4-order-done")

    # 4. The download: ciphertext only; 5. the printing house opens it with its private key.
    with desktop.expect_download() as download:
        desktop.get_by_role("button", name="Download the encrypted file (.gpg)").click()
    encrypted = open(download.value.path(), "rb").read()
    for card in cards:
        assert decrypt_pin(card.pin_encrypted).encode() not in encrypted
    rows = list(csv.DictReader(io.StringIO(printing_house.decrypt(encrypted).decode())))
    assert [(row["Serial Number"], row["PIN Code"]) for row in rows] == [
        (card.serial, decrypt_pin(card.pin_encrypted)) for card in cards
    ]

    # 6. The first box (three cards) arrives: check the range, then wake exactly those cards.
    box, on_the_way = cards[:3], cards[3:]
    desktop.goto("/admin/cards/carddelivery/add/")
    desktop.get_by_label("First serial in the box").fill(box[0].serial)
    desktop.get_by_label("Last serial in the box").fill(box[-1].serial)
    desktop.locator("#id_reference").fill("Box 1 of 2")
    desktop.locator(".submit-row input[type=submit]").click()
    assert "3 cards of this range will become redeemable" in desktop.content()
    screenshot(desktop, "print-5-delivery-check")
    desktop.locator(".submit-row input[type=submit]").click()
    desktop.wait_for_url("**/admin/cards/carddelivery/**")
    assert "3 cards woke up" in success_message(desktop)
    screenshot(desktop, "print-6-delivered")
    statuses = {c.serial: c.status for c in TopUpCard.objects.filter(batch=batch)}
    assert [statuses[c.serial] for c in box] == [CardStatus.NEW] * 3
    assert [statuses[c.serial] for c in on_the_way] == [CardStatus.DORMANT] * 3

    # 7. A subscriber of the reseller redeems a card of the box; a card still on its way is not.
    subscriber = SubscriberFactory(name="Rose", user__username="rose", reseller=acme)
    subscriber.user.user_permissions.add(Permission.objects.get(codename="redeem_card"))
    main = BalanceFactory(
        wallet=WalletFactory(subscription__subscriber=subscriber),
        resource_id=12,
        is_main=True,
        template__currency="USD",
    )
    phone.goto("/panel/login/")
    phone.get_by_label("Username").fill("rose")
    phone.get_by_label("Password", exact=True).fill("secret")
    phone.get_by_role("button", name="Log in").click()
    phone.wait_for_url("**/panel/")
    phone.get_by_label("Voucher Code").fill(decrypt_pin(box[0].pin_encrypted))
    phone.get_by_role("button", name="Redeem", exact=True).click()
    phone.wait_for_selector(".message")
    assert "10.00 USD added" in phone.locator(".message").first.inner_text()
    phone.get_by_label("Voucher Code").fill(decrypt_pin(on_the_way[0].pin_encrypted))
    phone.get_by_role("button", name="Redeem", exact=True).click()
    phone.wait_for_selector(".message")
    refusal = phone.locator(".message").first.inner_text()
    screenshot(phone, "print-7-panel-dormant-refused")
    assert refusal.startswith("This voucher has not been released for sale yet")
    main.refresh_from_db()
    assert main.amount == Decimal("10.00")
    assert TopUpCard.objects.get(pk=on_the_way[0].pk).status == CardStatus.DORMANT
