"""Large card batches generated in the background, on Django's tasks framework (django-tasks).

`generation_job_start` validates the request the way the synchronous path does, records a
`GenerationJob` and enqueues `run_generation_job` once the job row is committed. The worker
(`manage.py db_worker`) runs `card_batch_generate`, whose single transaction makes the batch
all-or-nothing, and reports progress through a second database connection so the admin can show
it while the batch's own transaction is still open.
"""

import datetime as dt
import logging
import time
from decimal import Decimal

from django.db import connection, connections, transaction
from django.utils import timezone
from django_tasks import task

from subscribers.models import Reseller

from .exceptions import GenerationError
from .models import GenerationJob, GenerationJobStatus
from .services import card_batch_generate, generation_request_check, pin_space_check

logger = logging.getLogger(__name__)

PROGRESS_EVERY_SECONDS = 0.5


@transaction.atomic
def generation_job_start(
    *,
    series: str,
    quantity: int,
    amount: Decimal | str,
    currency: str,
    pin_length: int,
    reseller: Reseller | None,
    expires_at: dt.datetime,
    actor=None,
) -> GenerationJob:
    """Queue a generation: the same checks as the synchronous path, so errors show at once."""
    amount, currency = generation_request_check(
        series=series,
        quantity=quantity,
        amount=amount,
        currency=currency,
        pin_length=pin_length,
        reseller=reseller,
        expires_at=expires_at,
        actor=actor,
    )
    pin_space_check(pin_length, quantity)
    job = GenerationJob.objects.create(
        params={
            "series": series,
            "quantity": quantity,
            "amount": str(amount),
            "currency": currency,
            "pin_length": pin_length,
            "reseller_id": reseller.pk if reseller else None,
            "expires_at": expires_at.isoformat(),
        },
        total=quantity,
        requested_by=actor,
    )
    transaction.on_commit(lambda: _enqueue(job.pk))
    return job


def _enqueue(job_id: int) -> None:
    result = run_generation_job.enqueue(job_id)
    GenerationJob.objects.filter(pk=job_id).update(task_id=str(result.id))


class _ProgressReporter:
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
        table = GenerationJob._meta.db_table
        with self.side.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET done = %s, heartbeat_at = now() WHERE id = %s",  # noqa: S608
                [done, self.job_id],
            )

    def close(self) -> None:
        if self.side is not None:
            self.side.close()


@task()
def run_generation_job(job_id: int) -> int | None:
    """The worker's side: generate the batch, then record the outcome on the job."""
    job = GenerationJob.objects.select_related("requested_by").get(pk=job_id)
    if job.status != GenerationJobStatus.QUEUED:
        logger.warning("Generation job %s is %s already: not run again", job_id, job.status)
        return None
    now = timezone.now()
    GenerationJob.objects.filter(pk=job_id).update(
        status=GenerationJobStatus.RUNNING, started_at=now, heartbeat_at=now
    )
    params = job.params
    reporter = _ProgressReporter(job_id)
    try:
        result = card_batch_generate(
            series=params["series"],
            quantity=params["quantity"],
            amount=Decimal(params["amount"]),
            currency=params["currency"],
            pin_length=params["pin_length"],
            reseller=Reseller.objects.filter(pk=params["reseller_id"]).first()
            if params["reseller_id"]
            else None,
            expires_at=dt.datetime.fromisoformat(params["expires_at"]),
            actor=job.requested_by,
            progress=reporter,
        )
    except GenerationError as error:
        GenerationJob.objects.filter(pk=job_id).update(
            status=GenerationJobStatus.FAILED, error=error.message, finished_at=timezone.now()
        )
        return None
    except Exception:
        logger.exception("Generation job %s failed", job_id)
        GenerationJob.objects.filter(pk=job_id).update(
            status=GenerationJobStatus.FAILED,
            error="The generation failed unexpectedly; no card was created. See the server log.",
            finished_at=timezone.now(),
        )
        raise
    finally:
        reporter.close()
    GenerationJob.objects.filter(pk=job_id).update(
        status=GenerationJobStatus.SUCCEEDED,
        batch=result.batch,
        done=params["quantity"],
        finished_at=timezone.now(),
    )
    return result.batch.pk
