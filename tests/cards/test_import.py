"""Import of cards from another system's CSV: every row checked, all or nothing."""

import pytest
import tablib
from django.contrib.auth.models import Permission

from cards import pins
from cards.exports import COLUMNS, export_csv
from cards.models import CardEvent, TopUpCard
from cards.models.events import CardEventKind
from cards.resources import TopUpCardExportResource, TopUpCardImportResource
from tests.factories import ResellerFactory, TopUpCardFactory, UserFactory

pytestmark = pytest.mark.django_db

HEADER = "Serial Number,Amount,Currency,PIN Code,Reseller,Expiry Date\n"


def load(text: str):
    return tablib.Dataset().load(text, format="csv")


def run(text: str, *, dry_run: bool, user=None):
    return TopUpCardImportResource(user=user).import_data(load(text), dry_run=dry_run)


def errors_by_row(result) -> dict[int, dict[str, list[str]]]:
    return {row.number: row.error_dict for row in result.invalid_rows}


def test_valid_file_imports_every_card_with_working_pins():
    ResellerFactory(name="Reseller 1")
    ops = UserFactory(username="ops")
    ops.user_permissions.add(Permission.objects.get(codename="view_pin"))
    text = HEADER + (
        "12-000000001,25.00,USD,1234 5678 9012,Reseller 1,2027-12-31 00:00:00+00:00\n"
        "13-000000002,8.5,eur,00001,,2027-12-31\n"
    )

    assert not run(text, dry_run=True).has_validation_errors()
    assert TopUpCard.objects.count() == 0  # the preview writes nothing
    result = run(text, dry_run=False, user=ops)

    assert not result.has_errors() and not result.has_validation_errors()
    first = TopUpCard.objects.get(series="12", number=1)
    assert first.reseller.name == "Reseller 1" and str(first.amount) == "25.00"
    assert bytes(first.pin_digest) == pins.pin_digest("123456789012")
    assert pins.decrypt_pin(first.pin_encrypted) == "123456789012"
    second = TopUpCard.objects.get(series="13", number=2)
    assert (second.currency, second.pin_length, second.pin_last4) == ("EUR", 5, "0001")
    event = CardEvent.objects.get(kind=CardEventKind.IMPORTED)
    assert event.actor == ops and event.changes["rows"] == 2


def test_every_bad_row_is_reported_with_its_number_and_reason_and_nothing_is_imported():
    existing = TopUpCardFactory(series="12", number=9, reseller=None)
    ResellerFactory(name="Reseller 1")
    text = HEADER + (
        "12-000000001,25.00,USD,123456789012,,2027-12-31\n"  # 1: fine
        "12-000000001,25.00,USD,223456789012,,2027-12-31\n"  # 2: serial twice
        f"12-000000009,25.00,USD,323456789012,,2027-12-31\n"  # 3: serial exists
        "12-000000003,-1,USD,423456789012,,2027-12-31\n"  # 4: bad amount
        "12-000000004,1.005,USD,523456789012,,2027-12-31\n"  # 5: too many decimals
        "12-000000005,5.00,USD,1234,,2027-12-31\n"  # 6: PIN too short
        "12-000000006,5.00,USD,123456789012,,2027-12-31\n"  # 7: PIN twice in file
        f"12-000000007,5.00,USD,{existing.pin},,2027-12-31\n"  # 8: PIN exists
        "12-000000008,5.00,USD,723456789012,Nobody,2027-12-31\n"  # 9: unknown reseller
        "12-000000010,5.00,US,823456789012,,31/12/2027\n"  # 10: currency and date
        "x-1,5.00,USD,92345678901A,,2027-12-31\n"  # 11: serial and PIN
    )

    result = run(text, dry_run=False)

    errors = errors_by_row(result)
    assert set(errors) == set(range(2, 12))
    assert errors[2] == {"serial": ["Serial Number 12-000000001 appears twice in the file."]}
    assert errors[3] == {"serial": ["Serial Number 12-000000009 exists already."]}
    assert errors[4] == {"amount": ["Amount must be a number greater than zero."]}
    assert errors[5] == {"amount": ["Amount may have at most 2 decimal places."]}
    assert errors[6] == {"pin": ["PIN must be 5 to 20 digits long."]}
    assert errors[7] == {"pin": ["This PIN appears twice in the file."]}
    assert errors[8] == {"pin": ["Card 12-000000009 has this PIN already."]}
    assert errors[9] == {"reseller": ["No reseller is named 'Nobody'."]}
    assert set(errors[10]) == {"currency", "expires_at"}
    assert set(errors[11]) == {"serial", "pin"}
    assert list(TopUpCard.objects.values_list("pk", flat=True)) == [existing.pk]
    assert not CardEvent.objects.filter(kind=CardEventKind.IMPORTED).exists()
    # No message repeats a PIN.
    flat = str(errors)
    assert "123456789012" not in flat and existing.pin not in flat


def test_missing_columns_are_refused_clearly():
    result = run("Serial Number,Amount\n1-000000001,5.00\n", dry_run=True)

    assert result.has_errors()
    assert "no column Currency, PIN Code, Expiry Date" in str(result.base_errors[0].error)


def test_an_export_with_pins_imports_into_another_system(settings):
    ResellerFactory(name="Reseller 1")
    cards = [TopUpCardFactory(series="3", number=n, reseller=None) for n in (1, 2)]
    exported = b"".join(export_csv(TopUpCard.objects.all(), with_pins=True)).decode()
    TopUpCard.objects.all().delete()

    result = run(exported, dry_run=False)

    assert not result.has_validation_errors()
    for card in cards:
        assert TopUpCard.objects.get(pin_digest=pins.pin_digest(card.pin)).serial == card.serial


def test_export_action_resource_has_the_streamed_columns_and_masks_without_the_right():
    card = TopUpCardFactory(series="3", number=1)
    clerk = UserFactory(username="clerk")

    data = TopUpCardExportResource(user=clerk).export(TopUpCard.objects.all())

    assert list(data.headers) == COLUMNS
    assert data[0][0] == "3-000000001" and data[0][3] == card.masked_pin
    streamed = b"".join(export_csv(TopUpCard.objects.all(), with_pins=False)).decode()
    assert data.csv.replace("\r\n", "\n") == streamed


def test_an_imported_pin_without_check_digit_is_redeemable_and_searchable(
    main_balance, subscriber, admin_client
):
    from django.urls import reverse

    from cards.services.redemption import card_redeem

    pin = "123456789010"  # another system's PIN: its last digit is no Luhn check digit
    assert not pins.luhn_valid(pin)
    text = HEADER + f"12-000000001,25.00,USD,{pin},,2030-12-31\n"
    assert not run(text, dry_run=False).has_validation_errors()

    response = admin_client.post(
        reverse("admin:cards_topupcard_search"), {"pin": pin, "_search": "Search"}
    )
    assert "pin_ref" in response["Location"]
    redemption = card_redeem(pin=pin, balance=main_balance, subscriber=subscriber)

    assert redemption.card.serial == "12-000000001"
    main_balance.refresh_from_db()
    assert str(main_balance.amount) == "25.000000"
