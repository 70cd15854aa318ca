"""`manage.py run_worker`: db_worker that waits out a database outage (issue 15).

The restart of a real PostgreSQL server is in tests/reliability/test_worker_outage.py; here the
outage is a database error where the library's worker would exit.
"""

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import OperationalError
from django.utils import timezone
from django_tasks_db.models import DBTaskResultQuerySet

from cards.jobs.runner import INTERRUPTED, job_interrupted
from cards.management.commands import run_worker
from cards.models import CardJob, TopUpCard
from cards.models.jobs import CardJobStatus
from tests.cards.test_jobs import start

pytestmark = pytest.mark.django_db(transaction=True)


def run_batch():
    call_command(
        "run_worker", "--batch", "--no-startup-delay", stdout=StringIO(), stderr=StringIO()
    )


def test_run_worker_runs_a_queued_job(admin_user):
    job = start(actor=admin_user)

    run_batch()

    job.refresh_from_db()
    assert job.status == CardJobStatus.SUCCEEDED
    assert TopUpCard.objects.count() == 30


def test_a_database_error_between_jobs_is_waited_out_and_the_queue_still_runs(
    admin_user, monkeypatch
):
    job = start(actor=admin_user)
    monkeypatch.setattr(run_worker, "RETRY_SECONDS", (0,))
    original = DBTaskResultQuerySet.get_locked
    failures = []

    def gone_once(self):
        if not failures:
            failures.append(1)
            raise OperationalError("server closed the connection unexpectedly")
        return original(self)

    monkeypatch.setattr(DBTaskResultQuerySet, "get_locked", gone_once)

    run_batch()  # db_worker would have exited with the error, the job still queued

    assert failures == [1]
    job.refresh_from_db()
    assert job.status == CardJobStatus.SUCCEEDED
    assert TopUpCard.objects.count() == 30


def test_only_a_job_that_could_not_record_its_end_is_marked_interrupted():
    now = timezone.now()
    cut_short = CardJob.objects.create(
        params={}, total=5, task_id="a", status=CardJobStatus.RUNNING, started_at=now
    )
    recorded = CardJob.objects.create(
        params={}, total=5, task_id="b", status=CardJobStatus.FAILED, error="Its own reason."
    )

    assert job_interrupted(task_id="a") == 1
    assert job_interrupted(task_id="b") == 0

    cut_short.refresh_from_db()
    recorded.refresh_from_db()
    assert (cut_short.status, cut_short.error) == (CardJobStatus.FAILED, INTERRUPTED)
    assert cut_short.finished_at is not None
    assert (recorded.status, recorded.error) == (CardJobStatus.FAILED, "Its own reason.")
