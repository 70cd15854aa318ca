"""Background generation on the tasks framework: progress, outcome, and all-or-nothing."""

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from cards.exceptions import GenerationError
from cards.jobs.generation import generation_job_start
from cards.models import CardBatch, CardJob, TopUpCard
from cards.models.jobs import CardJobStatus
from tests.factories import TopUpCardFactory

ROOT = Path(__file__).resolve().parents[2]


def start(**overrides):
    params = {
        "series": "8",
        "quantity": 30,
        "amount": "5.00",
        "currency": "USD",
        "pin_length": 12,
        "reseller": None,
        "expires_at": timezone.now() + dt.timedelta(days=30),
    }
    params.update(overrides)
    return generation_job_start(**params)


def run_worker():
    call_command("db_worker", "--batch", "--no-startup-delay", stdout=StringIO(), stderr=StringIO())


# The worker closes and reopens connections like a real one: these tests commit for real.
@pytest.mark.django_db(transaction=True)
def test_queued_job_is_run_by_the_worker(admin_user):
    job = start(actor=admin_user)
    assert job.status == CardJobStatus.QUEUED and TopUpCard.objects.count() == 0

    run_worker()

    job.refresh_from_db()
    assert job.status == CardJobStatus.SUCCEEDED and job.percent == 100
    assert job.batch == CardBatch.objects.get() and job.batch.created_by == admin_user
    assert sorted(TopUpCard.objects.values_list("number", flat=True)) == list(range(1, 31))
    assert job.task_id


@pytest.mark.django_db
def test_bad_request_is_refused_before_anything_is_queued():
    with pytest.raises(GenerationError) as error:
        start(quantity=0)

    assert error.value.field == "quantity"
    assert not CardJob.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_job_that_cannot_run_any_more_fails_with_the_reason():
    job = start(pin_length=6, quantity=10)
    # Meanwhile someone else filled the 6-digit PIN space.
    for number in range(1, 11):
        TopUpCardFactory(series="9", number=number, pin=f"{number:05d}3")

    run_worker()

    job.refresh_from_db()
    assert job.status == CardJobStatus.FAILED
    assert "6-digit PINs would become guessable" in job.error
    assert not TopUpCard.objects.filter(series="8").exists()


@pytest.mark.django_db
def test_stale_running_job_shows_as_interrupted(settings):
    settings.GENERATION_JOB_STALE_SECONDS = 60
    job = CardJob.objects.create(
        params={"series": "8"},
        total=10,
        status=CardJobStatus.RUNNING,
        heartbeat_at=timezone.now() - dt.timedelta(seconds=61),
    )

    assert job.is_interrupted
    job.heartbeat_at = timezone.now()
    assert not job.is_interrupted


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_batch_leaves_no_card_and_progress_was_visible():
    job = start(series="66", quantity=300_000, pin_length=14)  # committed: on_commit enqueues
    worker = spawn_worker()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            job.refresh_from_db()
            if job.done > 0:
                break
            time.sleep(0.1)
        assert 0 < job.done < job.total, "progress should be visible while the batch runs"
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()

    job.refresh_from_db()
    assert job.status == CardJobStatus.RUNNING and job.batch is None
    assert not TopUpCard.objects.filter(series="66").exists()
    assert not CardBatch.objects.filter(series="66").exists()


def spawn_worker() -> subprocess.Popen:
    """A real `db_worker` process on the test database, to be killed by the test."""
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "db_worker", "--no-startup-delay", "--interval", "0.2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _database_url() -> str:
    s = connection.settings_dict
    return f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST']}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.mark.django_db
def test_job_page_and_its_progress_endpoint(admin_client):
    from django.urls import reverse

    job = CardJob.objects.create(
        params={"series": "8"},
        total=200,
        done=50,
        status=CardJobStatus.RUNNING,
        heartbeat_at=timezone.now(),
    )

    page = admin_client.get(reverse("admin:cards_cardjob_change", args=[job.pk]))
    state = admin_client.get(reverse("admin:cards_cardjob_progress", args=[job.pk])).json()

    assert page.status_code == 200
    assert b'value="25"' in page.content and b"50 of 200 cards written" in page.content
    assert state["percent"] == 25 and state["finished"] is False
    job.status, job.error = CardJobStatus.FAILED, "Series 8 has room for only 3 more cards."
    job.save()
    state = admin_client.get(reverse("admin:cards_cardjob_progress", args=[job.pk])).json()
    assert state["finished"] and "room for only 3" in state["label"]
    assert "No card was created" in state["label"]


@pytest.mark.django_db
def test_progress_endpoint_needs_the_view_permission(client):
    from django.urls import reverse

    from tests.factories import UserFactory

    job = CardJob.objects.create(params={"series": "8"}, total=10)
    client.force_login(UserFactory(username="clerk", is_staff=True))

    response = client.get(reverse("admin:cards_cardjob_progress", args=[job.pk]))

    assert response.status_code == 403


@pytest.mark.django_db
def test_the_job_pages_old_addresses_redirect_to_the_same_pages(admin_client):
    from django.urls import reverse

    job = CardJob.objects.create(params={"series": "8"}, total=10)
    jobs = reverse("admin:cards_cardjob_changelist")
    redirects = {
        "/admin/cards/generationjob/": jobs,
        "/admin/cards/generationjob/?kind__exact=generate": f"{jobs}?kind__exact=generate",
        f"/admin/cards/generationjob/{job.pk}/change/": reverse(
            "admin:cards_cardjob_change", args=[job.pk]
        ),
        f"/admin/cards/generationjob/{job.pk}/progress/": reverse(
            "admin:cards_cardjob_progress", args=[job.pk]
        ),
    }

    for old, new in redirects.items():
        response = admin_client.get(old)
        assert (response.status_code, response["Location"]) == (302, new)
    page = admin_client.get(f"/admin/cards/generationjob/{job.pk}/progress/", follow=True)
    assert page.json()["total"] == 10


@pytest.mark.django_db(transaction=True)
def test_a_queued_job_is_stored_by_a_task_path_that_stays(admin_user):
    from django_tasks_db.models import DBTaskResult

    from cards.jobs import run_mass_job

    start(actor=admin_user)

    # Jobs queued before an upgrade run after it only if these paths still import.
    assert list(DBTaskResult.objects.values_list("task_path", flat=True)) == [
        "cards.jobs.run_generation_job"
    ]
    assert run_mass_job.module_path == "cards.jobs.run_mass_job"
