"""Print orders encrypted to the printing house's key (docs/printing.md): the printer, with a
key made here, opens exactly the ordered cards and PINs; nothing clear is stored or logged on
the way; keys that are weak, expired, revoked, private or unable to encrypt are refused; only
holders of the download permission, in the order's reseller, fetch the file; each step audited.
"""

import csv
import datetime as dt
import io
import logging
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from cards import openpgp
from cards.events import PrintDownloaded, PrintOrdered
from cards.exceptions import PrintError
from cards.jobs import run_print_order
from cards.jobs.printing import print_order_start
from cards.models import CardEvent, Printer, PrintOrder
from cards.models.events import CardEventKind
from cards.models.jobs import CardJobStatus
from cards.pins import format_pin
from cards.services.generation import card_batch_generate
from cards.services.printing import print_order_create, printer_register
from tests.cards.gpg_keys import needs_gpg
from tests.factories import PrinterFactory, ResellerFactory, StaffResellerFactory, UserFactory

pytestmark = [needs_gpg, pytest.mark.django_db]


def batch_of(quantity, *, reseller, series="7", actor=None, dormant=False):
    return card_batch_generate(
        series=series,
        quantity=quantity,
        amount="25.00",
        currency="USD",
        pin_length=12,
        reseller=reseller,
        expires_at=timezone.now() + dt.timedelta(days=90),
        dormant=dormant,
        actor=actor,
    )


def staff(*perms, reseller=None, username=None):
    user = UserFactory(is_staff=True, **({"username": username} if username else {}))
    for perm in perms:
        app, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app, codename=codename)
        )
    if reseller is not None:
        StaffResellerFactory(user=user, reseller=reseller)
    return user


@pytest.fixture
def printer(printing_house, admin_user):
    fingerprint = printing_house.make_key("Acme Print <press@acme.invalid>")
    registered = printer_register(
        name="Acme Print", public_key=printing_house.public_key(fingerprint), actor=admin_user
    )
    registered.house_fingerprint = fingerprint
    return registered


def produced(order):
    run_print_order.call(order.pk)
    order.refresh_from_db()
    assert order.status == CardJobStatus.SUCCEEDED, order.error
    return order


def download(client, order):
    return client.post(reverse("admin:cards_printorder_download", args=[order.pk]))


def decrypted_rows(printing_house, response) -> list[dict]:
    ciphertext = b"".join(response.streaming_content)
    clear = printing_house.decrypt(ciphertext).decode()
    return list(csv.DictReader(io.StringIO(clear)))


def test_the_printer_decrypts_exactly_the_batch_cards_and_pins(
    printing_house, printer, admin_user, admin_client, reseller
):
    batch = batch_of(40, reseller=reseller, actor=admin_user)
    other = batch_of(5, reseller=reseller, actor=admin_user)  # same series, next serials
    order = print_order_create(
        printer=printer, layout="standard", batch=batch.batch, actor=admin_user
    )
    produced(order)

    response = download(admin_client, order)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pgp-encrypted"
    assert "no-store" in response["Cache-Control"]
    rows = decrypted_rows(printing_house, response)
    first = batch.batch.first_number
    expected = {f"7-{first + i:09d}": pin for i, pin in enumerate(batch.pins)}
    assert {row["Serial Number"]: row["PIN Code"] for row in rows} == expected
    assert len(rows) == 40 and not set(other.pins) & {row["PIN Code"] for row in rows}
    assert {(r["Amount"], r["Currency"], r["Reseller"]) for r in rows} == {
        ("25.00", "USD", "Reseller 1")
    }
    assert (
        rows[0]["Expiry Date"] == f"{batch.batch.expires_at.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S}"
    )
    assert order.rows == 40 and order.expected == 40


def test_a_serial_range_in_another_layout_prints_only_that_range(
    printing_house, printer, admin_user, admin_client, reseller
):
    batch = batch_of(20, reseller=reseller, actor=admin_user)
    order = print_order_create(
        printer=printer,
        layout="scratch",
        series="7",
        first_number=5,
        last_number=9,
        actor=admin_user,
    )
    rows = decrypted_rows(printing_house, download(admin_client, produced(order)))

    assert [row["Serial"] for row in rows] == [f"7-{n:09d}" for n in range(5, 10)]
    assert [row["PIN"] for row in rows] == [format_pin(pin) for pin in batch.pins[4:9]]
    assert {row["Face Value"] for row in rows} == {"25.00 USD"}


def _every_stored_value() -> bytes:
    """Every column of every row of every table, as bytes: what the database holds."""
    dump = io.BytesIO()
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 (table names from the db)
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        dump.write(bytes(value))
                    else:
                        dump.write(str(value).encode())
                    dump.write(b"\x00")
    return dump.getvalue()


def test_nothing_clear_is_stored_or_logged_on_the_way(
    printing_house,
    printer,
    admin_user,
    admin_client,
    reseller,
    settings,
    tmp_path,
    monkeypatch,
    caplog,
):
    work = tmp_path / "print-work"
    work.mkdir()
    settings.PRINT_TEMP_DIR = str(work)
    monkeypatch.setattr(openpgp, "_remove", lambda home: None)  # keep gpg's homes to inspect
    batch = batch_of(60, reseller=reseller, actor=admin_user)
    caplog.set_level(logging.DEBUG)

    order = print_order_create(
        printer=printer, layout="scratch", batch=batch.batch, actor=admin_user
    )
    produced(order)
    response = download(admin_client, order)
    ciphertext = b"".join(response.streaming_content)

    forms = [pin.encode() for pin in batch.pins] + [format_pin(p).encode() for p in batch.pins]
    stored = _every_stored_value()
    assert not [pin for pin in forms if pin in stored]
    leftovers = [path for path in Path(work).rglob("*") if path.is_file()]
    assert leftovers  # gpg's homes were kept: what they hold is scanned
    for path in leftovers:
        content = path.read_bytes()
        assert not [pin for pin in forms if pin in content], path
    assert {path.name for path in leftovers} <= {
        "pubring.kbx",
        "pubring.kbx~",
        "trustdb.gpg",
        "random_seed",
        "print.gpg",
        "tofu.db",
    }
    assert not [p for p in Path(work).rglob("*") if "private-keys" in p.name]
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert not [pin for pin in forms if pin.decode() in logged]
    # And it is the real thing: the printer reads the PINs from what was stored.
    assert set(batch.pins) <= {
        row["PIN"].replace(" ", "")
        for row in csv.DictReader(io.StringIO(printing_house.decrypt(ciphertext).decode()))
    }


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (
            lambda h: h.make_key("Old RSA", algo="rsa2048", usage="default", encryption=None),
            "RSA keys must have at least 3072 bits",
        ),
        (lambda h: h.make_key("Expired", expire="1y", faked_time="20200101T000000"), "expired"),
        (lambda h: h.make_key("Sign only", encryption=None), "cannot encrypt"),
        (lambda h: _revoked(h), "revoked"),
    ],
    ids=["rsa2048", "expired", "no-encryption-subkey", "revoked"],
)
def test_weak_expired_revoked_or_unusable_keys_are_refused(
    printing_house, admin_user, make, reason
):
    fingerprint = make(printing_house)

    with pytest.raises(PrintError) as error:
        printer_register(
            name="Shady", public_key=printing_house.public_key(fingerprint), actor=admin_user
        )

    assert reason in error.value.message
    assert not Printer.objects.exists()


def _revoked(house):
    fingerprint = house.make_key("Revoked")
    house.revoke(fingerprint)
    return fingerprint


def test_dsa_keys_are_refused(printing_house, admin_user):
    fingerprint = printing_house.make_key("DSA", algo="dsa2048", usage="default", encryption=None)

    with pytest.raises(PrintError, match="DSA and ElGamal"):
        printer_register(
            name="DSA", public_key=printing_house.public_key(fingerprint), actor=admin_user
        )
    assert not Printer.objects.exists()


def test_a_private_key_or_two_keys_or_garbage_are_refused_and_nothing_is_imported(
    printing_house, admin_user, settings, tmp_path, monkeypatch
):
    work = tmp_path / "print-work"
    work.mkdir()
    settings.PRINT_TEMP_DIR = str(work)
    monkeypatch.setattr(openpgp, "_remove", lambda home: None)
    one = printing_house.make_key("One")
    two = printing_house.make_key("Two")
    both = printing_house.public_key(one) + printing_house.public_key(two)

    for text, reason in [
        (printing_house.private_key(one), "private key"),
        (both, "exactly one public key"),
        ("hello", "ASCII-armored"),
    ]:
        with pytest.raises(PrintError, match=reason):
            printer_register(name="X", public_key=text, actor=admin_user)
    assert not Printer.objects.exists()
    assert not [p for p in work.rglob("*") if "private-keys" in str(p)]


def test_the_admin_registers_a_printer_and_shows_its_fingerprint(printing_house, admin_client):
    fingerprint = printing_house.make_key("Press <p@press.invalid>")

    response = admin_client.post(
        reverse("admin:cards_printer_add"),
        {"name": "Press", "public_key": printing_house.public_key(fingerprint), "active": "on"},
        follow=True,
    )

    printer = Printer.objects.get()
    assert printer.fingerprint == fingerprint and printer.key_description == "ed25519"
    assert openpgp.group_fingerprint(fingerprint) in response.content.decode()


def test_the_admin_refuses_a_weak_key_beside_the_field(printing_house, admin_client):
    fingerprint = printing_house.make_key("Weak", algo="rsa2048", usage="default", encryption=None)

    response = admin_client.post(
        reverse("admin:cards_printer_add"),
        {"name": "Weak", "public_key": printing_house.public_key(fingerprint), "active": "on"},
    )

    assert response.status_code == 200
    assert "at least 3072 bits" in response.content.decode()
    assert not Printer.objects.exists()


def test_a_key_expired_since_registration_refuses_new_orders(printing_house, admin_user, reseller):
    fingerprint = printing_house.make_key("Lapsed", expire="1y", faked_time="20200101T000000")
    printer = PrinterFactory(
        public_key=printing_house.public_key(fingerprint), fingerprint=fingerprint
    )
    batch = batch_of(3, reseller=reseller, actor=admin_user)

    with pytest.raises(PrintError, match="expired"):
        print_order_create(printer=printer, layout="standard", batch=batch.batch, actor=admin_user)
    assert not PrintOrder.objects.exists()
    assert not CardEvent.objects.filter(kind=CardEventKind.PRINT_ORDERED).exists()


def test_each_order_and_each_download_is_audited(printer, admin_user, admin_client, reseller):
    batch = batch_of(4, reseller=reseller, actor=admin_user)
    order = print_order_create(
        printer=printer, layout="tabbed", batch=batch.batch, actor=admin_user, ip_address="10.0.0.9"
    )
    produced(order)
    download(admin_client, order)
    download(admin_client, order)

    ordered = CardEvent.objects.get(kind=CardEventKind.PRINT_ORDERED)
    assert ordered.actor == admin_user and ordered.batch == batch.batch
    assert ordered.ip_address == "10.0.0.9"
    assert ordered.changes[PrintOrdered.FINGERPRINT] == printer.fingerprint
    assert ordered.changes[PrintOrdered.FIRST_SERIAL] == batch.batch.first_serial
    assert ordered.changes[PrintOrdered.LAST_SERIAL] == batch.batch.last_serial
    assert ordered.changes[PrintOrdered.CARDS] == 4
    downloads = CardEvent.objects.filter(kind=CardEventKind.PRINT_DOWNLOADED)
    assert downloads.count() == 2
    assert {event.actor for event in downloads} == {admin_user}
    assert {event.changes[PrintDownloaded.SHA256] for event in downloads} == {order.sha256}
    assert {event.changes[PrintDownloaded.FINGERPRINT] for event in downloads} == {
        printer.fingerprint
    }


def test_staff_without_the_download_permission_cannot_download(
    printer, admin_user, client, reseller
):
    batch = batch_of(3, reseller=reseller, actor=admin_user)
    order = produced(
        print_order_create(printer=printer, layout="standard", batch=batch.batch, actor=admin_user)
    )
    viewer = staff("cards.view_printorder", "cards.add_printorder", "cards.view_pin")
    client.force_login(viewer)

    assert client.get(reverse("admin:cards_printorder_change", args=[order.pk])).status_code == 200
    response = download(client, order)

    assert response.status_code == 403
    assert not CardEvent.objects.filter(kind=CardEventKind.PRINT_DOWNLOADED).exists()


def test_another_resellers_staff_cannot_see_or_download_the_order(
    printer, admin_user, client, reseller
):
    batch = batch_of(3, reseller=reseller, actor=admin_user)
    order = produced(
        print_order_create(printer=printer, layout="standard", batch=batch.batch, actor=admin_user)
    )
    perms = ("cards.view_printorder", "cards.download_printorder", "cards.add_printorder")
    stranger = staff(*perms, reseller=ResellerFactory(name="Reseller 2"))
    own = staff(*perms, reseller=reseller)

    client.force_login(stranger)
    listing = client.get(reverse("admin:cards_printorder_changelist")).content.decode()
    assert order.first_serial not in listing
    assert client.get(reverse("admin:cards_printorder_change", args=[order.pk])).status_code in (
        302,
        404,
    )
    assert download(client, order).status_code == 404
    assert not CardEvent.objects.filter(kind=CardEventKind.PRINT_DOWNLOADED).exists()
    # Nor order prints of that reseller's cards.
    with pytest.raises(PrintError, match="not one of your company's"):
        print_order_create(printer=printer, layout="standard", batch=batch.batch, actor=stranger)
    assert PrintOrder.objects.count() == 1

    client.force_login(own)
    assert download(client, order).status_code == 200


def test_printing_houses_are_closed_to_reseller_staff(client, reseller):
    scoped = staff("cards.add_printer", "cards.view_printer", reseller=reseller)
    client.force_login(scoped)

    assert client.get(reverse("admin:cards_printer_changelist")).status_code == 403
    assert client.post(reverse("admin:cards_printer_add"), {"name": "Mine"}).status_code == 403
    assert not Printer.objects.exists()


def test_the_admin_orders_a_print_of_a_serial_range(printer, admin_user, admin_client, reseller):
    batch_of(10, reseller=reseller, actor=admin_user)

    response = admin_client.post(
        reverse("admin:cards_printorder_add"),
        {
            "printer": printer.pk,
            "layout": "standard",
            "first_serial": "7-000000003",
            "last_serial": "7-000000006",
        },
    )

    order = PrintOrder.objects.get()
    assert response.status_code == 302
    assert (order.series, order.first_number, order.last_number, order.expected) == ("7", 3, 6, 4)
    assert order.status == CardJobStatus.QUEUED and order.requested_by == admin_user


def test_redeemed_blocked_and_expired_cards_are_not_printed(
    printing_house, printer, admin_user, admin_client, reseller
):
    batch = batch_of(6, reseller=reseller, actor=admin_user)
    cards = list(batch.batch.cards.order_by("number"))
    cards[0].blocked = True
    cards[0].save()
    cards[1].expires_at = timezone.now() - dt.timedelta(seconds=1)
    cards[1].save()

    order = produced(
        print_order_create(printer=printer, layout="standard", batch=batch.batch, actor=admin_user)
    )
    rows = decrypted_rows(printing_house, download(admin_client, order))

    assert [row["PIN Code"] for row in rows] == batch.pins[2:]


@pytest.mark.django_db(transaction=True)
def test_the_worker_produces_a_queued_order(printing_house, printer, admin_user, reseller):
    from io import StringIO

    from django.core.management import call_command

    batch = batch_of(5, reseller=reseller, actor=admin_user)
    order = print_order_start(
        printer=printer, layout="standard", batch=batch.batch, actor=admin_user
    )
    assert order.status == CardJobStatus.QUEUED

    call_command("db_worker", "--batch", "--no-startup-delay", stdout=StringIO(), stderr=StringIO())

    order.refresh_from_db()
    assert order.status == CardJobStatus.SUCCEEDED and order.rows == 5 and order.task_id
    assert apps.get_model("cards", "PrintOrderChunk").objects.filter(order=order).exists()


def test_the_order_page_offers_the_download_only_to_holders_of_the_permission(
    printer, admin_user, admin_client, client, reseller
):
    batch = batch_of(2, reseller=reseller, actor=admin_user)
    order = produced(
        print_order_create(printer=printer, layout="standard", batch=batch.batch, actor=admin_user)
    )
    page = reverse("admin:cards_printorder_change", args=[order.pk])
    download_url = reverse("admin:cards_printorder_download", args=[order.pk])

    assert download_url in admin_client.get(page).content.decode()
    client.force_login(staff("cards.view_printorder"))
    assert download_url not in client.get(page).content.decode()
    assert client.get(download_url).status_code == 405  # never a link: a POST


def test_a_print_order_cannot_be_deleted_even_by_a_superuser(
    printer, admin_user, admin_client, reseller
):
    """An order is history (which cards went to which printing house, in which file): the
    admin offers no Delete, on the page or as a list action, and the delete URL is refused."""
    batch = batch_of(2, reseller=reseller, actor=admin_user)
    order = produced(
        print_order_create(printer=printer, layout="standard", batch=batch.batch, actor=admin_user)
    )
    delete_url = reverse("admin:cards_printorder_delete", args=[order.pk])

    page = admin_client.get(reverse("admin:cards_printorder_change", args=[order.pk]))
    listing = admin_client.get(reverse("admin:cards_printorder_changelist"))

    assert delete_url not in page.content.decode()
    assert "delete_selected" not in listing.content.decode()
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert PrintOrder.objects.filter(pk=order.pk).exists()
