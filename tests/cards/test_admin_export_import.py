"""Issue 6 through the admin: the streamed export, the Export action, the import, and large
batches sent to the background."""

import csv
import datetime as dt
import io

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from cards import pins
from cards.exports import COLUMNS
from cards.models import CardEvent, CardJob, TopUpCard
from cards.models.events import CardEventKind
from subscribers.models import StaffReseller
from tests.factories import ResellerFactory, TopUpCardFactory, UserFactory

pytestmark = pytest.mark.django_db

EXPORT = reverse("admin:cards_topupcard_export_csv")
CHANGELIST = reverse("admin:cards_topupcard_changelist")


def staff(*perms, username="clerk"):
    user = UserFactory(username=username, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=perms))
    return user


def rows(response) -> list[list[str]]:
    assert response.status_code == 200, response
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


@pytest.fixture
def cards():
    one, two = ResellerFactory(name="Reseller 1"), ResellerFactory(name="Reseller 2")
    return {
        "r1": [TopUpCardFactory(series="4", number=n, reseller=one) for n in (1, 2, 3)],
        "r2": [TopUpCardFactory(series="5", number=n, reseller=two) for n in (1, 2)],
        "resellers": (one, two),
    }


def test_changelist_offers_export_beside_generate_and_mass_edit(admin_client, cards):
    page = admin_client.get(CHANGELIST).content.decode()

    assert 'id="export-csv"' in page and 'id="export-csv-pins"' in page
    assert 'id="import-cards"' in page
    assert page.index("Generate Top-Up Cards") < page.index("Export CSV")


def test_export_follows_the_current_search_and_masks_pins_by_default(admin_client, cards):
    one, _ = cards["resellers"]

    data = rows(admin_client.get(EXPORT, {"reseller": one.pk}))

    assert data[0] == COLUMNS
    assert [r[0] for r in data[1:]] == ["4-000000001", "4-000000002", "4-000000003"]
    assert all("•" in r[3] for r in data[1:])
    event = CardEvent.objects.get(kind=CardEventKind.EXPORTED)
    assert event.actor.username == "admin" and event.changes["rows"] == 3
    assert event.changes["filter"] == {"reseller": str(one.pk)} and not event.changes["with_pins"]


def test_export_with_pins_of_a_series(admin_client, cards):
    data = rows(admin_client.get(EXPORT, {"series": "5", "with_pins": "1"}))

    assert [r[3] for r in data[1:]] == [c.pin for c in cards["r2"]]
    response = admin_client.get(EXPORT, {"series": "5", "with_pins": "1"})
    assert "no-store" in response["Cache-Control"]
    assert 'filename="cards-series-5.csv"' in response["Content-Disposition"]


def test_export_with_pins_needs_view_pin_and_leaves_no_trace(client, cards):
    client.force_login(staff("view_topupcard"))

    refused = client.get(EXPORT, {"with_pins": "1"})
    allowed = rows(client.get(EXPORT))

    assert refused.status_code == 403
    assert len(allowed) == 6 and all("•" in r[3] for r in allowed[1:])
    assert CardEvent.objects.filter(kind=CardEventKind.EXPORTED).count() == 1


def test_export_of_a_batch_from_its_page(admin_client):
    admin_client.post(
        reverse("admin:cards_topupcard_generate"),
        {
            "amount": "5.00",
            "currency": "USD",
            "quantity": "3",
            "series": "9",
            "pin_length": "12",
            "reseller": "none",
            "expires_at": (timezone.now() + dt.timedelta(days=9)).strftime("%Y-%m-%d %H:%M:%S"),
            "_ok": "OK",
        },
    )
    batch = TopUpCard.objects.first().batch
    page = admin_client.get(reverse("admin:cards_cardbatch_change", args=[batch.pk]))

    assert f"{EXPORT}?batch={batch.pk}".encode() in page.content
    assert len(rows(admin_client.get(EXPORT, {"batch": batch.pk}))) == 4


def test_reseller_scoped_staff_export_only_their_cards_whatever_they_ask(client, cards):
    one, two = cards["resellers"]
    user = staff("view_topupcard", "view_pin", username="scoped")
    StaffReseller.objects.create(user=user, reseller=one)
    client.force_login(user)

    asked_other = rows(client.get(EXPORT, {"series": "5", "with_pins": "1"}))
    everything = rows(client.get(EXPORT, {"with_pins": "1"}))

    assert asked_other == [COLUMNS]
    assert {r[4] for r in everything[1:]} == {"Reseller 1"}


def test_bad_search_is_refused_not_widened(admin_client, cards):
    response = admin_client.get(EXPORT, {"serial_from": "not-a-serial"})

    assert response.status_code == 302
    assert not CardEvent.objects.filter(kind=CardEventKind.EXPORTED).exists()


# --- the django-import-export Export action ---------------------------------------------------


EXPORT_FIELDS = (
    "serial",
    "amount",
    "currency",
    "pin",
    "reseller",
    "status",
    "expires_at",
    "activated",
    "created_at",
)


def export_form(picked):
    """The Export action's second step: CSV, every column, these cards."""
    fields = {f"topupcardexportresource_{name}": "on" for name in EXPORT_FIELDS}
    return {"format": "0", "export_items": picked, "resource": "0", **fields}


def test_export_action_exports_the_selected_cards(admin_client, cards):
    picked = [cards["r1"][0].pk, cards["r2"][1].pk]
    form = admin_client.post(
        CHANGELIST, {"action": "export_admin_action", "_selected_action": picked}
    )
    assert form.status_code == 200 and b"format" in form.content

    response = admin_client.post(
        reverse("admin:cards_topupcard_export"),
        {
            "format": "0",
            "export_items": picked,
            "resource": "0",
            **{
                f"topupcardexportresource_{name}": "on"
                for name in (
                    "serial",
                    "amount",
                    "currency",
                    "pin",
                    "reseller",
                    "status",
                    "expires_at",
                    "activated",
                    "created_at",
                )
            },
        },
    )

    assert response.status_code == 200, response.content[:500]
    text = response.content.decode()
    assert "4-000000001" in text and "5-000000002" in text and "4-000000002" not in text
    assert cards["r1"][0].pin in text  # the superuser holds view_pin
    assert CardEvent.objects.get(kind=CardEventKind.EXPORTED).changes["rows"] == 2


def test_export_action_refuses_more_than_its_limit(admin_client, cards, monkeypatch):
    monkeypatch.setattr("cards.admin.cards.EXPORT_ACTION_LIMIT", 2)
    picked = [c.pk for c in cards["r1"]]

    response = admin_client.post(reverse("admin:cards_topupcard_export"), export_form(picked))

    assert b"at most 2 cards" in response.content
    assert not CardEvent.objects.filter(kind=CardEventKind.EXPORTED).exists()


# --- the import -----------------------------------------------------------------------------

IMPORT = reverse("admin:cards_topupcard_import")
PROCESS = reverse("admin:cards_topupcard_process_import")


def upload(client, text: str):
    return client.post(
        IMPORT,
        {
            "resource": "0",
            "format": "0",
            "import_file": SimpleUploadedFile("cards.csv", text.encode(), "text/csv"),
        },
    )


def test_import_previews_without_clear_pins_then_imports_on_confirm(admin_client):
    ResellerFactory(name="Reseller 1")
    text = (
        "Serial Number,Amount,Currency,PIN Code,Reseller,Expiry Date\n"
        "31-000000001,10.00,USD,5555 6666 7777,Reseller 1,2030-01-01\n"
        "31-000000002,10.00,USD,5555 6666 8888,Reseller 1,2030-01-01\n"
    )

    preview = upload(admin_client, text)

    page = preview.content.decode()
    assert preview.status_code == 200 and "confirm" in page.lower()
    assert "555566667777" not in page and "5555 6666 7777" not in page
    assert TopUpCard.objects.count() == 0
    confirm = preview.context["confirm_form"].initial
    done = admin_client.post(PROCESS, {**confirm, "resource": "0"})
    assert done.status_code == 302
    card = TopUpCard.objects.get(series="31", number=1)
    assert bytes(card.pin_digest) == pins.pin_digest("555566667777")
    assert CardEvent.objects.get(kind=CardEventKind.IMPORTED).changes["rows"] == 2


def test_import_with_a_bad_row_shows_the_reason_and_offers_no_confirmation(admin_client):
    text = (
        "Serial Number,Amount,Currency,PIN Code,Reseller,Expiry Date\n"
        "31-000000001,10.00,USD,555566667777,,2030-01-01\n"
        "31-000000002,10.00,USD,1234,,2030-01-01\n"
    )

    response = upload(admin_client, text)

    page = response.content.decode()
    assert "PIN must be 5 to 20 digits long." in page
    assert response.context.get("confirm_form") is None
    assert TopUpCard.objects.count() == 0


def test_import_needs_the_add_permission(client):
    client.force_login(staff("view_topupcard"))

    assert client.get(IMPORT).status_code == 403


def test_scoped_staff_may_not_import_pins_even_for_their_reseller(client):
    """An imported PIN is checked against every reseller's cards (docs/reliability.md)."""
    one = ResellerFactory(name="Reseller 1")
    user = staff("view_topupcard", "add_topupcard", "view_pin", username="scoped")
    StaffReseller.objects.create(user=user, reseller=one)
    client.force_login(user)
    text = (
        "Serial Number,Amount,Currency,PIN Code,Reseller,Expiry Date\n"
        "31-000000001,10.00,USD,555566667777,Reseller 1,2030-01-01\n"
    )

    response = upload(client, text)

    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "Importing cards is for operators not limited to one reseller" in page
    assert 'id="import-cards"' not in page
    assert TopUpCard.objects.count() == 0
    assert not CardEvent.objects.exists()


# --- large batches go to the background ------------------------------------------------------


def test_a_large_batch_is_queued_and_the_operator_sees_its_progress_page(admin_client, settings):
    settings.GENERATION_SYNC_LIMIT = 10

    response = admin_client.post(
        reverse("admin:cards_topupcard_generate"),
        {
            "amount": "5.00",
            "currency": "USD",
            "quantity": "11",
            "series": "9",
            "pin_length": "12",
            "reseller": "none",
            "expires_at": (timezone.now() + dt.timedelta(days=9)).strftime("%Y-%m-%d %H:%M:%S"),
            "_ok": "OK",
        },
    )

    job = CardJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:cards_cardjob_change", args=[job.pk])
    assert job.total == 11 and TopUpCard.objects.count() == 0
    page = admin_client.get(response["Location"]).content.decode()
    assert "Queued" in page and "job-progress" in page


def test_export_action_cannot_reach_another_resellers_cards(client, cards):
    one, _ = cards["resellers"]
    user = staff("view_topupcard", username="scoped")
    StaffReseller.objects.create(user=user, reseller=one)
    client.force_login(user)
    theirs = cards["r2"][0]

    response = client.post(
        reverse("admin:cards_topupcard_export"), export_form([cards["r1"][0].pk, theirs.pk])
    )

    # The foreign pk is not a valid choice: the form is shown again, nothing is exported.
    assert response.status_code == 200 and theirs.serial not in response.content.decode()
    assert not CardEvent.objects.filter(kind=CardEventKind.EXPORTED).exists()


# --- an export too long for one request ------------------------------------------------------


def test_an_export_longer_than_a_request_may_last_is_refused_with_the_way_round(
    admin_client, cards, settings
):
    """gunicorn kills a sync worker 30 s into a request, streaming or not: a 10M-card series
    (about 70 s) arrived cut off half-way. Past EXPORT_HTTP_MAX_CARDS the export is refused
    before any row is read or any audit event written, and the page says what to do instead."""
    settings.EXPORT_HTTP_MAX_CARDS = 2

    response = admin_client.get(EXPORT, {"series": "4", "with_pins": "1"}, follow=True)

    assert not response.streaming
    page = response.content.decode()
    assert "more than 2 cards" in page
    assert "manage.py export_cards --series 4 --output FILE" in page
    assert not CardEvent.objects.filter(kind=CardEventKind.EXPORTED).exists()
    assert not any(c.pin in page for c in cards["r1"])
    # At the limit it streams as before.
    assert len(rows(admin_client.get(EXPORT, {"series": "5", "with_pins": "1"}))) == 3
