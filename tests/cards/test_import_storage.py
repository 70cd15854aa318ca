"""No clear PIN at rest: an import file waits between preview and confirmation only encrypted,
and for IMPORT_UPLOAD_LIFETIME at most (cards/import_storage.py)."""

import base64
import datetime as dt
import os
import pickle
import tempfile
import time

import pytest
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from cards import pins
from cards.import_storage import forget_import_upload
from cards.models import TopUpCard

pytestmark = pytest.mark.django_db

IMPORT = reverse("admin:cards_topupcard_import")
PROCESS = reverse("admin:cards_topupcard_process_import")
HEADER = "Serial Number,Amount,Currency,PIN Code,Reseller,Expiry Date\n"
PIN = "918273645546"


def upload(client, text: str):
    return client.post(
        IMPORT,
        {
            "resource": "0",
            "format": "0",
            "import_file": SimpleUploadedFile("cards.csv", text.encode(), "text/csv"),
        },
    )


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()


def forms_of(pin: str) -> list[bytes]:
    return [f.encode() for f in (pin, pins.format_pin(pin), pin[:6], pin[-6:])]


def everything_stored() -> bytes:
    """Every row of every table, the database cache's values unpickled, the sessions decoded."""
    out = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - table names from the schema
            for row in cursor.fetchall():
                out.append(repr(row).encode())
                if table == "topup_cache_test":
                    out.append(repr(pickle.loads(base64.b64decode(row[1]))).encode())
    out += [repr(s.get_decoded()).encode() for s in Session.objects.all()]
    return b"\n".join(out)


def new_temp_files(since: float) -> bytes:
    found = []
    with os.scandir(tempfile.gettempdir()) as entries:
        for entry in entries:
            try:
                if entry.is_file() and entry.stat().st_mtime >= since:
                    with open(entry.path, "rb") as handle:
                        found.append(handle.read(10_000_000))
            except OSError:
                continue
    return b"\n".join(found)


@pytest.fixture
def database_cache(settings):
    """The production cache (a database table) instead of the tests' local memory."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "topup_cache_test",
        }
    }
    call_command("createcachetable", verbosity=0)
    return settings


def test_after_a_preview_no_table_cache_row_or_temp_file_holds_the_clear_pin(
    admin_client, database_cache
):
    started = time.time() - 1
    text = HEADER + f"40-000000001,10.00,USD,{PIN},,2030-01-01\n"

    preview = upload(admin_client, text)

    assert preview.context["confirm_form"] is not None
    stored, temp = everything_stored(), new_temp_files(started)
    for form in forms_of(PIN):
        assert form not in stored
        assert form not in temp
    confirm = preview.context["confirm_form"].initial
    admin_client.post(PROCESS, {**confirm, "resource": "0"})
    assert bytes(TopUpCard.objects.get(series="40").pin_digest) == pins.pin_digest(PIN)
    assert not cache.has_key("cards-import-" + confirm["import_file_name"])


def test_the_local_memory_cache_holds_no_clear_pin_either(admin_client):
    upload(admin_client, HEADER + f"40-000000001,10.00,USD,{PIN},,2030-01-01\n")

    values = [pickle.loads(value) for value in cache._cache.values()]  # locmem, tests only

    assert values and all(PIN.encode() not in bytes(v) for v in values if isinstance(v, bytes))


def test_an_abandoned_preview_is_gone_within_the_hour(admin_client, settings):
    assert settings.IMPORT_UPLOAD_LIFETIME <= dt.timedelta(hours=1)
    confirm = upload(admin_client, HEADER + f"40-000000001,10.00,USD,{PIN},,2030-01-01\n").context[
        "confirm_form"
    ]
    name = confirm.initial["import_file_name"]
    key = cache.make_key("cards-import-" + name)
    expires_in = cache._expire_info[key] - time.time()  # locmem, tests only
    [cleanup] = DBTaskResult.objects.filter(task_path=forget_import_upload.module_path)
    deadline = timezone.now() + dt.timedelta(hours=1)

    assert 0 < expires_in <= 3600
    assert cleanup.args_kwargs["args"] == [name] and cleanup.run_after <= deadline

    forget_import_upload.call(name)  # what the worker does at run_after

    assert not cache.has_key("cards-import-" + name)
    done = admin_client.post(PROCESS, {**confirm.initial, "resource": "0"}, follow=True)
    assert "This preview has expired or was imported already" in done.content.decode()
    assert not TopUpCard.objects.exists()


def test_a_preview_that_cannot_be_confirmed_keeps_nothing(admin_client):
    text = HEADER + f"40-000000001,10.00,USD,{PIN},,2030-01-01\n40-000000002,1,USD,12,,2030-01-01\n"

    preview = upload(admin_client, text)

    assert preview.context.get("confirm_form") is None
    assert not [key for key in cache._cache if "import" in key]
