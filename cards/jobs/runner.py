"""What every card job shares (docs/cards.md, Background jobs): the rule for "now or in the
background" that the admin screens ask, queueing a job's task, the worker's claim-run-record of a
job, its progress through a second connection, and recording a job the database lost as
interrupted."""

import logging
import time
from collections.abc import Mapping

from django.conf import settings
from django.db import connection, connections
from django.utils import timezone

from cards.models import CardJob
from cards.models.jobs import CardJobKind, CardJobStatus
from common.querylog import bounded_query_log

logger = logging.getLogger(__name__)

PROGRESS_EVERY_SECONDS = 0.5

# The job page adds what was not done ("No card was created." / "…changed."): cards/admin/jobs.py.
INTERRUPTED = "Interrupted by a database outage; start it again."


def worker_can_search(filters: Mapping[str, str]) -> bool:
    # A PIN search is kept in the operator's session, out of the worker's reach (and it selects
    # a card or two).
    return "pin_ref" not in filters


def runs_in_background(
    *, kind: CardJobKind, count: int, filters: Mapping[str, str] | None = None
) -> bool:
    """Whether work of `kind` on `count` cards is queued for the worker instead of done in the
    request: past GENERATION_SYNC_LIMIT cards to generate, or MASS_EDIT_SYNC_LIMIT cards to edit
    or delete, the request would run too long. A search by PIN Code (`filters`) never is."""
    if kind == CardJobKind.GENERATE:
        limit = settings.GENERATION_SYNC_LIMIT
    elif kind == CardJobKind.IMPORT:
        limit = settings.IMPORT_SYNC_LIMIT  # rows of the file
    else:
        limit = settings.MASS_EDIT_SYNC_LIMIT
    return count > limit and worker_can_search(filters or {})


def job_interrupted(*, task_id: str) -> int:
    """Record as interrupted the job of the worker's failed task `task_id` if the job is still
    queued or running: `run_job` records every failure it sees, so such a job lost its own
    record with the database (cards/management/commands/run_worker.py). The transaction the
    outage cut short was rolled back: a generation applied nothing, a Mass Edit or Delete all
    exactly the chunks its `done` counts (resumable). How many were marked."""
    return CardJob.objects.filter(
        task_id=task_id, status__in=[CardJobStatus.QUEUED, CardJobStatus.RUNNING]
    ).update(status=CardJobStatus.FAILED, error=INTERRUPTED, finished_at=timezone.now())


def enqueue(job_task, job_id: int) -> None:
    result = job_task.enqueue(job_id)
    CardJob.objects.filter(pk=job_id).update(task_id=str(result.id))


def run_job(job_id: int, work, *, refused: type[Exception], unexpected: str, watch):
    """The worker's side of every job: claim it once, run `work(job, watcher)`, record how it
    ended. `work` returns (what the task returns, the job fields to set on success); an error of
    type `refused` is the operator's to read, anything else is logged and re-raised."""
    now = timezone.now()
    claimed = CardJob.objects.filter(pk=job_id, status=CardJobStatus.QUEUED).update(
        status=CardJobStatus.RUNNING, started_at=now, heartbeat_at=now
    )
    job = CardJob.objects.select_related("requested_by").get(pk=job_id)
    if not claimed:
        logger.warning("Job %s is %s already: not run again", job_id, job.status)
        return None
    watcher = watch(job_id)
    try:
        # Thousands of statements and no request: with DEBUG on, Django's query log would grow.
        with bounded_query_log():
            value, fields = work(job, watcher)
    except refused as error:
        CardJob.objects.filter(pk=job_id).update(
            status=CardJobStatus.FAILED, error=error.message, finished_at=timezone.now()
        )
        return None
    except Exception:
        logger.exception("Job %s failed", job_id)
        CardJob.objects.filter(pk=job_id).update(
            status=CardJobStatus.FAILED, error=unexpected, finished_at=timezone.now()
        )
        raise
    finally:
        watcher.close()
    CardJob.objects.filter(pk=job_id).update(
        status=CardJobStatus.SUCCEEDED, finished_at=timezone.now(), **fields
    )
    return value


class ProgressReporter:
    """Writes progress on its own connection: the batch's transaction is not committed yet."""

    def __init__(self, job_id: int):
        self.job_id = job_id
        self.last = 0.0
        self.side = (
            connections.create_connection("default") if connection.vendor == "postgresql" else None
        )

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self.side is None or (now - self.last < PROGRESS_EVERY_SECONDS and done < total):
            return
        self.last = now
        table = CardJob._meta.db_table
        with self.side.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET done = %s, heartbeat_at = now() WHERE id = %s",  # noqa: S608
                [done, self.job_id],
            )

    def close(self) -> None:
        if self.side is not None:
            self.side.close()
