"""The source document's exact example, verbatim, against `manage.py seed_demo` data."""

import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from cards.models import TopUpCard
from tests.wallets.conftest import basic_auth
from wallets.models import Balance, ExternalVoucher, LedgerEntry

pytestmark = pytest.mark.django_db

URL = "/rsgateway/data/v3/subscription/AccessNumber+5555555555/wallet/12/topup"
JSON_URL = "/rsgateway/data/json/subscription/AccessNumber+5555555555/wallet/12/topup"
BODY = """<MtxRequestSubscriberTopupBalance>
   <Amount>25.00</Amount>
   <Voucher>ABC12345679</Voucher>
</MtxRequestSubscriberTopupBalance>"""


@pytest.fixture
def seed_output():
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def rose_main() -> Balance:
    return Balance.objects.get(
        wallet__subscription__access_numbers__number="5555555555", resource_id=12
    )


def series4_pin(seed_output: str) -> str:
    line = next(x for x in seed_output.splitlines() if x.strip().startswith("4-"))
    return "".join(line.split()[1:])


def parse_xml_reply(response) -> dict:
    from xml.etree import ElementTree

    root = ElementTree.fromstring(response.content)
    return {"$": root.tag, **{child.tag: child.text for child in root}}


def test_the_documents_example_works_verbatim_with_the_vms_client(client, seed_output):
    before = rose_main().amount

    response = client.put(URL, BODY, content_type="application/xml", **basic_auth("vms", "vms"))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/xml")
    assert parse_xml_reply(response) == {
        "$": "MtxResponse",
        "RouteId": "1",
        "Result": "0",
        "ResultText": "OK",
    }
    assert rose_main().amount == before + Decimal("25.00")
    entry = LedgerEntry.objects.get(voucher="ABC12345679")
    assert entry.amount == Decimal("25.00") and entry.actor.username == "vms"
    assert ExternalVoucher.objects.get().reference == "ABC12345679"
    call_command("check_ledger", stdout=StringIO())


def test_the_example_retried_returns_the_original_success_without_a_second_credit(
    client, seed_output
):
    client.put(URL, BODY, content_type="application/xml", **basic_auth("vms", "vms"))
    after_first = rose_main().amount

    again = client.put(URL, BODY, content_type="application/xml", **basic_auth("vms", "vms"))

    assert again.status_code == 200 and parse_xml_reply(again)["Result"] == "0"
    assert rose_main().amount == after_first
    assert LedgerEntry.objects.filter(voucher="ABC12345679").count() == 1


def test_the_same_request_with_a_series_4_card_pin_works_with_the_partner_client(
    client, seed_output
):
    pin = series4_pin(seed_output)
    before = rose_main().amount
    body = BODY.replace("ABC12345679", pin)

    response = client.put(
        URL, body, content_type="application/xml", **basic_auth("partner", "partner")
    )

    assert response.status_code == 200, response.content
    assert parse_xml_reply(response)["Result"] == "0"
    assert rose_main().amount == before + Decimal("25.00")
    card = TopUpCard.objects.get(series="4", number=1)
    assert card.activated_at is not None and card.activated_by.name == "Rose Orig"
    assert card.ledger_entry.balance == rose_main()


def test_the_json_binding_with_a_card_pin_and_a_token(client, seed_output):
    pin = series4_pin(seed_output)
    token = next(
        line.split("Token ")[1].split()[0]
        for line in seed_output.splitlines()
        if "API client partner" in line
    )
    before = rose_main().amount

    response = client.put(
        JSON_URL,
        json.dumps({"$": "MtxRequestSubscriberTopupBalance", "Amount": "25.00", "Voucher": pin}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {token}",
    )

    assert response.status_code == 200, response.content
    assert response.json() == {"$": "MtxResponse", "RouteId": 1, "Result": 0, "ResultText": "OK"}
    assert rose_main().amount == before + Decimal("25.00")
