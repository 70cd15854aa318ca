"""Exports keep PINs as text for spreadsheets (docs/cards.md, "Export"): the Export action's XLSX
formats the serial and PIN cells as text ("@"), read back here with openpyxl; the CSV stays raw
(its PINs are digits as stored, leading zeros included)."""

import csv
import io

import openpyxl
import pytest
from django.urls import reverse

from cards.models import CardEvent
from cards.models.events import CardEventKind
from tests.factories import TopUpCardFactory

pytestmark = pytest.mark.django_db
EXPORT = reverse("admin:cards_topupcard_export")
EXPORT_CSV = reverse("admin:cards_topupcard_export_csv")
CHANGELIST = reverse("admin:cards_topupcard_changelist")
FIELDS = ("serial", "amount", "currency", "pin", "reseller", "status", "expires_at")
PIN = "046556613456"


@pytest.fixture
def card():
    return TopUpCardFactory(series="4", number=1, pin=PIN, reseller=None)


def export_xlsx(client, picked, fields=FIELDS):
    formats = client.post(CHANGELIST, {"action": "export_admin_action", "_selected_action": picked})
    xlsx = [
        value
        for value, label in formats.context["form"].fields["format"].choices
        if label.lower() == "xlsx"
    ]
    response = client.post(
        EXPORT,
        {
            "format": xlsx[0],
            "export_items": picked,
            "resource": "0",
            **{f"topupcardexportresource_{name}": "on" for name in fields},
        },
    )
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    return openpyxl.load_workbook(io.BytesIO(response.content)).active


def test_xlsx_pin_and_serial_cells_are_text_and_keep_the_leading_zero(admin_client, card):
    sheet = export_xlsx(admin_client, [card.pk])

    headers = [cell.value for cell in sheet[1]]
    row = {name: cell for name, cell in zip(headers, sheet[2], strict=True)}
    pin, serial = row["PIN Code"], row["Serial Number"]
    assert pin.value == PIN and pin.data_type == "s" and pin.number_format == "@"
    assert serial.value == "4-000000001" and serial.number_format == "@"
    assert row["Amount"].number_format == "General"  # only the code columns are forced to text
    assert CardEvent.objects.get(kind=CardEventKind.EXPORTED).changes["rows"] == 1


def test_xlsx_without_the_pin_column_still_exports(admin_client, card):
    sheet = export_xlsx(admin_client, [card.pk], fields=("serial", "amount"))

    assert [cell.value for cell in sheet[1]] == ["Serial Number", "Amount"]
    assert sheet["A2"].number_format == "@"


def test_csv_keeps_the_pin_as_stored_for_machines(admin_client, card):
    response = admin_client.get(EXPORT_CSV, {"series": "4", "with_pins": "1"})

    body = b"".join(response.streaming_content).decode()
    (row,) = list(csv.DictReader(io.StringIO(body)))
    assert row["PIN Code"] == PIN  # no apostrophe, no ="…": the import reads it back as is


def test_the_export_links_say_how_to_keep_pins_as_text(admin_client, card):
    html = admin_client.get(CHANGELIST).content.decode()

    assert "open it with the PIN Code column as Text" in html
    assert "XLSX keeps them as text" in html
