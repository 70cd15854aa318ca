"""Import at scale (issue 15): a file over IMPORT_SYNC_LIMIT rows is checked by the worker, its
preview shown on the job page, and imported all or nothing once its uploader confirms it."""

import logging
import time

import psycopg
import pytest
import tablib
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse

from cards import pins
from cards.events import PinsChecked
from cards.exceptions import ImportRefused
from cards.import_storage import EncryptedImportStorage
from cards.jobs import run_import_job
from cards.models import CardEvent, CardJob, TopUpCard
from cards.models.events import CardEventKind
from cards.models.jobs import CardJobKind, CardJobStatus
from cards.resources import TopUpCardImportResource
from cards.services.importing import checking, writing
from subscribers.models import StaffReseller
from tests.cards.admin_helpers import CARD_PERMS, operator, snapshot
from tests.cards.test_import_storage import (  # noqa: F401 - database_cache is a fixture
    database_cache,
    everything_stored,
    forms_of,
    new_temp_files,
)
from tests.factories import ResellerFactory, TopUpCardFactory

pytestmark = pytest.mark.django_db

IMPORT = reverse("admin:cards_topupcard_import")
HEADER = "Serial Number,Amount,Currency,PIN Code,Reseller,Expiry Date\n"
GOOD = HEADER + (
    "41-000000001,10.00,USD,918273645546,,2030-01-01\n"
    "41-000000002,10.00,USD,5555 6666 7777,,2030-01-01\n"
    "41-000000003,12.50,eur,00001,,2030-01-01 00:00:00+00:00\n"
)
# Every kind of bad row the in-request preview reports (tests/cards/test_import.py).
BAD = HEADER + (
    "12-000000001,25.00,USD,123456789012,,2027-12-31\n"
    "12-000000001,25.00,USD,223456789012,,2027-12-31\n"
    "12-000000009,25.00,USD,323456789012,,2027-12-31\n"
    "12-000000003,-1,USD,423456789012,,2027-12-31\n"
    "12-000000004,1.005,USD,523456789012,,2027-12-31\n"
    "12-000000005,5.00,USD,1234,,2027-12-31\n"
    "12-000000006,5.00,USD,123456789012,,2027-12-31\n"
    "12-000000007,5.00,USD,{taken},,2027-12-31\n"
    "12-000000008,5.00,USD,723456789012,Nobody,2027-12-31\n"
    "12-000000010,5.00,US,823456789012,,31/12/2027\n"
    "x-1,5.00,USD,92345678901A,,2027-12-31\n"
    "30-000000001,10.00,USD,555566668888,Mine,2030-01-01\n"
    "30-000000002,10.00,USD,555566669999,,2030-01-01\n"
)


@pytest.fixture(autouse=True)
def background(settings):
    settings.IMPORT_SYNC_LIMIT = 2
    cache.clear()


def upload(client, text: str, name: str = "cards.csv"):
    return client.post(
        IMPORT,
        {
            "resource": "0",
            "format": "0",
            "import_file": SimpleUploadedFile(name, text.encode(), "text/csv"),
        },
    )


def run(job: CardJob) -> CardJob:
    run_import_job.call(job.pk)  # what the worker does
    job.refresh_from_db()
    return job


def confirm(client, job: CardJob):
    return client.post(reverse("admin:cards_cardjob_import_confirm", args=[job.pk]))


def page(client, job: CardJob) -> str:
    return client.get(reverse("admin:cards_cardjob_change", args=[job.pk])).content.decode()


def checks() -> list[str]:
    events = CardEvent.objects.filter(kind=CardEventKind.PINS_CHECKED).order_by("pk")
    return [event.changes[PinsChecked.WHAT] for event in events]


def test_a_large_file_is_checked_by_the_worker_then_imported_once_confirmed(admin_client):
    response = upload(admin_client, GOOD)

    # The request stores the file and queues its check: no row is read, nothing is written.
    job = CardJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:cards_cardjob_change", args=[job.pk])
    assert (job.kind, job.status, job.params["stage"]) == (
        CardJobKind.IMPORT,
        CardJobStatus.QUEUED,
        "check",
    )
    assert TopUpCard.objects.count() == 0 and checks() == []
    assert "Queued" in page(admin_client, job)

    job = run(job)

    assert job.status == CardJobStatus.SUCCEEDED and job.percent == 100
    assert job.result["rows"] == 3 and job.result["error_rows"] == 0
    assert TopUpCard.objects.count() == 0 and checks() == [PinsChecked.IMPORT_PREVIEW]
    shown = page(admin_client, job)
    assert "all 3 rows can be imported" in shown and "Confirm import" in shown
    assert "918273645546" not in shown

    confirmed = confirm(admin_client, job)

    imported = CardJob.objects.exclude(pk=job.pk).get()
    assert confirmed["Location"] == reverse("admin:cards_cardjob_change", args=[imported.pk])
    assert imported.params["stage"] == "import" and TopUpCard.objects.count() == 0
    imported = run(imported)

    assert imported.status == CardJobStatus.SUCCEEDED and imported.result == {"imported": 3}
    card = TopUpCard.objects.get(series="41", number=2)
    assert bytes(card.pin_digest) == pins.pin_digest("555566667777")
    assert pins.decrypt_pin(card.pin_encrypted) == "555566667777"
    third = TopUpCard.objects.get(series="41", number=3)
    assert (str(third.amount), third.currency, third.pin_length) == ("12.50", "EUR", 5)
    event = CardEvent.objects.get(kind=CardEventKind.IMPORTED)
    assert event.actor.username == "admin" and event.changes == {"rows": 3, "file": "cards.csv"}
    assert checks() == [PinsChecked.IMPORT_PREVIEW, PinsChecked.IMPORT]
    assert not EncryptedImportStorage(name=job.params["upload"]).exists()
    assert "3 cards imported" in page(admin_client, imported)
    # The check cannot be confirmed a second time.
    confirm(admin_client, job)
    assert CardJob.objects.count() == 2


def in_request_errors(text: str) -> dict:
    dataset = tablib.Dataset().load(text, format="csv")
    result = TopUpCardImportResource(user=None).import_data(dataset, dry_run=True)
    return {row.number: row.error_dict for row in result.invalid_rows}


def test_the_workers_preview_reports_the_same_rows_and_reasons_as_the_requests(admin_client):
    mine, theirs = ResellerFactory(name="Mine"), ResellerFactory(name="Theirs")
    existing = TopUpCardFactory(series="12", number=9, reseller=None)
    TopUpCardFactory(series="30", number=9, reseller=theirs)
    text = BAD.format(taken=existing.pin)
    before = snapshot(TopUpCard)
    expected = in_request_errors(text)

    upload(admin_client, text)
    job = run(CardJob.objects.get())

    found = {number: errors for number, errors in job.result["errors"]}
    assert found == expected
    assert set(found) == set(range(2, 14))
    assert found[2] == {"serial": ["Serial Number 12-000000001 appears twice in the file."]}
    assert found[3] == {"serial": ["Serial Number 12-000000009 exists already."]}
    assert found[8] == {"pin": ["Card 12-000000009 has this PIN already."]}
    assert found[9] == {"reseller": ["No reseller is named 'Nobody'."]}
    assert found[12]["serial"][0].startswith("Series 30 belongs to Theirs")
    assert job.result["error_rows"] == 12 and job.result["rows"] == 13
    shown = page(admin_client, job)
    assert "12 of 13 rows have problems" in shown and "Confirm import" not in shown
    assert "This PIN appears twice in the file." in shown
    assert existing.pin not in shown and "123456789012" not in shown
    assert snapshot(TopUpCard) == before and mine.pk
    # Never confirmable: the upload is gone at once, and a confirmation is refused.
    assert not EncryptedImportStorage(name=job.params["upload"]).exists()
    confirm(admin_client, job)
    assert CardJob.objects.filter(params__stage="import").count() == 0


def test_a_serial_generated_between_preview_and_confirm_refuses_the_whole_import(admin_client):
    upload(admin_client, GOOD)
    job = run(CardJob.objects.get())
    confirm(admin_client, job)
    TopUpCardFactory(series="41", number=2, reseller=None)  # e.g. a batch generated meanwhile
    before = snapshot(TopUpCard)

    imported = run(CardJob.objects.get(params__stage="import"))

    assert imported.status == CardJobStatus.FAILED
    assert imported.error == (
        "Nothing was imported: row 2: Serial Number 41-000000002 exists already."
    )
    assert snapshot(TopUpCard) == before
    assert not CardEvent.objects.filter(kind=CardEventKind.IMPORTED).exists()
    assert "No card was imported." in page(admin_client, imported)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_card_committed_while_the_import_writes_rolls_everything_back(monkeypatch, admin_user):
    """The race the re-check cannot see: a card committed by another connection after the
    import's check, before its INSERT. The unique index refuses it, and nothing stays."""
    data = GOOD.encode()
    clash = (pins.pin_digest("918273645546"), pins.encrypt_pin("918273645546"))
    settings = connection.settings_dict
    other = psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        password=settings["PASSWORD"],
        host=settings["HOST"],
        port=settings["PORT"] or 5432,
        autocommit=True,
    )
    write = writing.sql.import_stage_write

    def meanwhile(**kwargs):
        other.execute(
            "INSERT INTO cards_topupcard (series, number, amount, currency, pin_digest,"
            " pin_encrypted, pin_length, pin_last4, expires_at, blocked, dormant, created_at)"
            " VALUES ('77', 1, 1, 'USD', %s, %s, 12, '5546', now(), false, false, now())",
            list(clash),
        )
        return write(**kwargs)

    monkeypatch.setattr(writing.sql, "import_stage_write", meanwhile)
    try:
        with pytest.raises(ImportRefused, match="written meanwhile"):
            writing.cards_import(
                data=data, file_format="csv", file_name="cards.csv", actor=admin_user
            )
    finally:
        other.close()

    assert list(TopUpCard.objects.values_list("series", flat=True)) == ["77"]
    assert not TopUpCard.objects.filter(series="41").exists()
    assert not CardEvent.objects.filter(kind=CardEventKind.IMPORTED).exists()


# --- who may -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "perms, scoped",
    [
        ((*CARD_PERMS, "view_pin"), True),
        (CARD_PERMS, False),
    ],
    ids=["scoped-with-view-pin", "unscoped-without-view-pin"],
)
def test_who_may_not_import_starts_no_job_and_sees_none(client, admin_client, perms, scoped):
    mine = ResellerFactory(name="Mine")
    user = operator(*perms, username="importer")
    if scoped:
        StaffReseller.objects.create(user=user, reseller=mine)
    upload(admin_client, GOOD)
    theirs = run(CardJob.objects.get())  # the admin's checked upload
    client.force_login(user)

    response = upload(client, GOOD)

    assert response.status_code == 302 and CardJob.objects.count() == 1
    assert client.get(reverse("admin:cards_cardjob_change", args=[theirs.pk])).status_code == 302
    progress = client.get(reverse("admin:cards_cardjob_progress", args=[theirs.pk]))
    assert progress.status_code == 404
    assert "cards.csv" not in client.get(reverse("admin:cards_cardjob_changelist")).content.decode()
    assert confirm(client, theirs).status_code == 404
    assert CardJob.objects.count() == 1 and not TopUpCard.objects.exists()


def test_only_the_operator_who_uploaded_the_file_confirms_it(client, admin_client):
    upload(admin_client, GOOD)
    job = run(CardJob.objects.get())
    colleague = operator(*CARD_PERMS, "view_pin", username="colleague")
    client.force_login(colleague)

    response = client.post(
        reverse("admin:cards_cardjob_import_confirm", args=[job.pk]), follow=True
    )

    assert "Only the operator who uploaded the file confirms its import." in (
        response.content.decode()
    )
    assert CardJob.objects.count() == 1 and not TopUpCard.objects.exists()


def test_an_upload_gone_before_the_worker_reads_it_fails_the_check_with_the_reason(admin_client):
    upload(admin_client, GOOD)
    job = CardJob.objects.get()
    EncryptedImportStorage(name=job.params["upload"]).remove()  # its 30 minutes are over

    job = run(job)

    assert job.status == CardJobStatus.FAILED and "Upload it again" in job.error
    assert not TopUpCard.objects.exists() and checks() == []


# --- no clear PIN at rest -------------------------------------------------------------------------


@pytest.mark.usefixtures("database_cache")
def test_no_clear_pin_in_the_database_cache_temp_files_or_logs(admin_client, caplog):
    started = time.time() - 1
    caplog.set_level(logging.DEBUG)

    upload(admin_client, GOOD)
    job = run(CardJob.objects.get())
    stored_while_waiting = everything_stored()
    confirm(admin_client, job)
    run(CardJob.objects.get(params__stage="import"))

    assert TopUpCard.objects.count() == 3
    stored, temp = everything_stored(), new_temp_files(started)
    logged = "\n".join(record.getMessage() for record in caplog.records).encode()
    for pin in ("918273645546", "555566667777"):
        for form in forms_of(pin):
            assert form not in stored_while_waiting
            assert form not in stored
            assert form not in temp
            assert form not in logged


# --- set-based: the queries do not grow with the rows -------------------------------------------


def rows_of(count: int, series: str) -> str:
    return HEADER + "".join(
        f"{series}-{n:09d},10.00,USD,{7000000000 + n:012d},,2030-01-01\n"
        for n in range(1, count + 1)
    )


def queries_to_check(rows: int, series: str, admin_user) -> int:
    from django.test.utils import CaptureQueriesContext

    dataset = tablib.Dataset().load(rows_of(rows, series), format="csv")
    with CaptureQueriesContext(connection) as queries:
        result = TopUpCardImportResource(user=admin_user).import_data(dataset, dry_run=True)
    assert not result.has_errors() and not result.has_validation_errors()
    return len(queries)


def test_checking_a_file_takes_as_many_queries_for_ten_rows_as_for_a_chunk(admin_user):
    """One round trip per chunk of rows, and a few statements for the whole file: never a query
    per row (the old preview ran several per row, about 93 rows a second). The in-request
    preview; the worker's check is the same `import_check`."""
    queries_to_check(1, "60", admin_user)  # the user's permissions, cached from here on
    few = queries_to_check(10, "61", admin_user)
    chunk = queries_to_check(checking.CHUNK, "62", admin_user)
    two_chunks = queries_to_check(checking.CHUNK + 1, "63", admin_user)

    assert chunk == few
    # The second chunk's own round trip (SQLite's executemany; PostgreSQL's COPY goes past
    # Django's query log).
    assert few <= two_chunks <= few + 1
    assert few <= 40
    assert not TopUpCard.objects.exists()


def test_a_large_xlsx_file_goes_the_same_way(admin_client):
    import io

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    for line in GOOD.strip().splitlines():
        sheet.append(line.split(","))  # every cell text, as the Export action's XLSX has them
    data = io.BytesIO()
    book.save(data)
    response = admin_client.post(
        IMPORT,
        {
            "resource": "0",
            "format": "1",
            "import_file": SimpleUploadedFile("cards.xlsx", data.getvalue()),
        },
    )

    job = CardJob.objects.get()
    assert response.status_code == 302 and job.params["format"] == "xlsx"
    job = run(job)
    assert job.result["rows"] == 3 and job.result["error_rows"] == 0
    confirm(admin_client, job)
    run(CardJob.objects.get(params__stage="import"))
    assert TopUpCard.objects.filter(series="41").count() == 3
    assert pins.decrypt_pin(TopUpCard.objects.get(number=1).pin_encrypted) == "918273645546"
