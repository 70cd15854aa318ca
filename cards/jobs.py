"""Large card work done in the background, on Django's tasks framework (django-tasks).

`runs_in_background` is the one rule for "now or in the background" that the admin screens ask.

`generation_job_start` validates the request the way the synchronous path does, records a
`CardJob` and enqueues `run_generation_job` once the job row is committed. The worker
(`manage.py run_worker`) runs `card_batch_generate`, whose single transaction makes the batch
all-or-nothing, and reports progress through a second database connection so the admin can show
it while the batch's own transaction is still open.

`mass_edit_job_start` / `delete_all_job_start` do the same for a Mass Edit or Delete all of a
selection: the job keeps the Advanced Search parameters the operator confirmed and the count they
saw. `run_mass_job` rebuilds the selection with `card_list` scoped to that operator, writes its
card ids once (the count must be the confirmed one), then changes them in chunks of
MASS_EDIT_CHUNK_SIZE cards, each its own short transaction that also records its counts on the
job (cards.services.selection): a sale waits for one chunk at most, the job page shows the
percentage done, and a job cut short has done exactly what it reports; `mass_job_resume` queues
it again to do the rest.

A queued job is stored by the tasks' import paths (`cards.jobs.run_generation_job`,
`cards.jobs.run_mass_job`): they stay where they are, or jobs queued before an upgrade would not
run after it.
"""

import datetime as dt
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from decimal import Decimal

from django.conf import settings
from django.db import connection, connections, transaction
from django.utils import timezone
from django_tasks import task

from cards.services.generation import card_batch_generate, generation_request_check, pin_space_check
from cards.services.importing.checking import cards_import_check
from cards.services.importing.writing import cards_import
from cards.services.mass_edit import EXPIRE_NOW
from cards.services.scope import pin_import_refusal
from cards.services.selection import job_chunk_delete, job_chunk_edit, job_selection_snapshot
from common.querylog import bounded_query_log
from subscribers.models import Reseller
from subscribers.selectors import staff_reseller

from .exceptions import CardEditError, CardPermissionDenied, GenerationError, ImportRefused
from .import_storage import EncryptedImportStorage
from .models import CardJob
from .models.jobs import CardJobKind, CardJobStatus
from .selectors import InvalidCardSearch, card_list

logger = logging.getLogger(__name__)

PROGRESS_EVERY_SECONDS = 0.5
HEARTBEAT_SECONDS = 5.0
EXPIRED_NOW = "now"
"""A Mass Edit job's stored `expires_at` for "expire now" (cards.services.mass_edit.EXPIRE_NOW)."""


def _worker_can_search(filters: Mapping[str, str]) -> bool:
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
    return count > limit and _worker_can_search(filters or {})


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
    dormant: bool = False,
    actor=None,
) -> CardJob:
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
    job = CardJob.objects.create(
        params={
            "series": series,
            "quantity": quantity,
            "amount": str(amount),
            "currency": currency,
            "pin_length": pin_length,
            "reseller_id": reseller.pk if reseller else None,
            "expires_at": expires_at.isoformat(),
            "dormant": bool(dormant),
        },
        total=quantity,
        requested_by=actor,
    )
    transaction.on_commit(lambda: _enqueue(run_generation_job, job.pk))
    return job


# The job page adds what was not done ("No card was created." / "…changed."): cards/admin/jobs.py.
INTERRUPTED = "Interrupted by a database outage; start it again."


def job_interrupted(*, task_id: str) -> int:
    """Record as interrupted the job of the worker's failed task `task_id` if the job is still
    queued or running: `_run_job` records every failure it sees, so such a job lost its own
    record with the database (cards/management/commands/run_worker.py). The transaction the
    outage cut short was rolled back: a generation applied nothing, a Mass Edit or Delete all
    exactly the chunks its `done` counts (resumable). How many were marked."""
    return CardJob.objects.filter(
        task_id=task_id, status__in=[CardJobStatus.QUEUED, CardJobStatus.RUNNING]
    ).update(status=CardJobStatus.FAILED, error=INTERRUPTED, finished_at=timezone.now())


def _enqueue(job_task, job_id: int) -> None:
    result = job_task.enqueue(job_id)
    CardJob.objects.filter(pk=job_id).update(task_id=str(result.id))


def _run_job(job_id: int, work, *, refused: type[Exception], unexpected: str, watch):
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
        table = CardJob._meta.db_table
        with self.side.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET done = %s, heartbeat_at = now() WHERE id = %s",  # noqa: S608
                [done, self.job_id],
            )

    def close(self) -> None:
        if self.side is not None:
            self.side.close()


def _generate(job: CardJob, reporter) -> tuple[int, dict]:
    params = job.params
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
        dormant=params.get("dormant", False),
        actor=job.requested_by,
        progress=reporter,
    )
    return result.batch.pk, {"batch": result.batch, "done": params["quantity"]}


@task()
def run_generation_job(job_id: int) -> int | None:
    """The worker's side: generate the batch, then record the outcome on the job."""
    return _run_job(
        job_id,
        _generate,
        refused=GenerationError,
        unexpected="The generation failed unexpectedly; no card was created. See the server log.",
        watch=_ProgressReporter,
    )


def _mass_job_start(*, kind, filters: dict, expected: int, actor, extra: dict) -> CardJob:
    if not _worker_can_search(filters):
        raise CardEditError("A search by PIN Code is not run in the background.")
    scoped = staff_reseller(actor)
    job = CardJob.objects.create(
        kind=kind,
        params={
            "filters": dict(filters),
            "expected": expected,
            # Who may see the job: the operator's own reseller scope (as for generation jobs).
            "reseller_id": scoped.pk if scoped else None,
            **extra,
        },
        total=expected,
        requested_by=actor,
    )
    transaction.on_commit(lambda: _enqueue(run_mass_job, job.pk))
    return job


@transaction.atomic
def mass_edit_job_start(
    *, filters: dict, expected: int, changes: dict, delete_ids=(), actor
) -> CardJob:
    """Queue a Mass Edit of every card `filters` selects for `actor` (`expected` of them may
    change, as the confirmation showed); `changes` as for `cards_selection_edit`."""
    stored = {}
    if "expires_at" in changes:
        expiry = changes["expires_at"]
        stored["expires_at"] = EXPIRED_NOW if expiry is EXPIRE_NOW else expiry.isoformat()
    if "reseller" in changes:
        stored["reseller"] = changes["reseller"].pk if changes["reseller"] else None
    if "blocked" in changes:
        stored["blocked"] = bool(changes["blocked"])
    if not stored:
        raise CardEditError("Choose a change to make.")
    return _mass_job_start(
        kind=CardJobKind.MASS_EDIT,
        filters=filters,
        expected=expected,
        actor=actor,
        extra={"changes": stored, "delete_ids": sorted(int(pk) for pk in delete_ids)},
    )


@transaction.atomic
def delete_all_job_start(*, filters: dict, expected: int, actor) -> CardJob:
    """Queue the deletion of every card `filters` selects for `actor` (`expected` of them)."""
    return _mass_job_start(
        kind=CardJobKind.DELETE_ALL,
        filters=filters,
        expected=expected,
        actor=actor,
        extra={},
    )


class _Heartbeat:
    """Touches the job's heartbeat from a thread with its own connection while the work runs:
    each chunk records its progress as it commits, but writing the selection at the start is
    one long statement, and the page must not show the job as interrupted meanwhile."""

    def __init__(self, job_id: int):
        self.job_id = job_id
        self.stop = threading.Event()
        self.thread = None
        if connection.vendor == "postgresql":
            self.thread = threading.Thread(target=self._beat, daemon=True)
            self.thread.start()

    def _beat(self) -> None:
        side = connections.create_connection("default")  # made in this thread, used only here
        table = CardJob._meta.db_table
        try:
            while not self.stop.wait(HEARTBEAT_SECONDS):
                with side.cursor() as cursor:
                    cursor.execute(
                        f"UPDATE {table} SET heartbeat_at = now() WHERE id = %s",  # noqa: S608
                        [self.job_id],
                    )
        finally:
            side.close()

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()


def _changes_from_params(stored: dict) -> dict:
    changes = {}
    if stored.get("expires_at") == EXPIRED_NOW:
        changes["expires_at"] = EXPIRE_NOW  # at the time the worker runs it
    elif "expires_at" in stored:
        changes["expires_at"] = dt.datetime.fromisoformat(stored["expires_at"])
    if "reseller" in stored:
        reseller = None
        if stored["reseller"] is not None:
            reseller = Reseller.objects.filter(pk=stored["reseller"]).first()
            if reseller is None:
                raise CardEditError("The company chosen no longer exists.", field="reseller")
        changes["reseller"] = reseller
    if "blocked" in stored:
        changes["blocked"] = stored["blocked"]
    return changes


def _run_mass(job: CardJob) -> dict:
    """The work itself, chunk by chunk; what it did in all, for the job page."""
    actor, params = job.requested_by, job.params
    if job.kind == CardJobKind.MASS_EDIT:
        permission = "cards.change_topupcard"
    else:
        permission = "cards.delete_topupcard"
    if actor is None or not actor.is_active or not actor.has_perm(permission):
        raise CardPermissionDenied("The operator who started it is no longer allowed to.")
    if not job.snapshot_taken:
        try:
            selection = card_list(filters=params["filters"], user=actor)
        except InvalidCardSearch as error:
            raise CardEditError(f"The search is not valid: {error}") from error
        job_selection_snapshot(job=job, cards=selection, expected=params["expected"])
    size = settings.MASS_EDIT_CHUNK_SIZE
    if job.kind == CardJobKind.DELETE_ALL:

        def chunk(after):
            return job_chunk_delete(job_id=job.pk, after=after, size=size, actor=actor)
    else:
        changes = _changes_from_params(params["changes"])
        delete_ids = params.get("delete_ids", ())

        def chunk(after):
            return job_chunk_edit(
                job_id=job.pk,
                after=after,
                size=size,
                changes=changes,
                delete_ids=delete_ids,
                actor=actor,
            )

    after = 0
    while (done := chunk(after)) is not None:
        after = done.last_id
    job.refresh_from_db(fields=["result"])
    return job.result


def mass_job_resumable(job: CardJob) -> bool:
    """Whether a Mass Edit / Delete all job stopped with cards left to do: failed (an outage, an
    error) or interrupted (the worker killed) after its selection was written."""
    stopped = job.status == CardJobStatus.FAILED or job.is_interrupted
    return job.kind != CardJobKind.GENERATE and stopped and job.snapshot_taken and job.left > 0


@transaction.atomic
def mass_job_resume(*, job: CardJob, actor) -> CardJob:
    """Queue a stopped Mass Edit / Delete all job again: it does the cards it has not done (its
    selection as written at its start, never the ones done), as the operator who started it."""
    job = CardJob.objects.select_for_update().get(pk=job.pk)
    if not mass_job_resumable(job):
        raise CardEditError("This job has nothing left to resume.")
    result = dict(job.result)
    result["resumed_by"] = [*result.get("resumed_by", []), getattr(actor, "pk", None)]
    CardJob.objects.filter(pk=job.pk).update(
        status=CardJobStatus.QUEUED, error="", finished_at=None, result=result
    )
    logger.info("Job %s resumed by %s with %s cards left", job.pk, actor, job.left)
    transaction.on_commit(lambda: _enqueue(run_mass_job, job.pk))
    job.refresh_from_db()
    return job


@task()
def run_mass_job(job_id: int) -> dict | None:
    """The worker's side of Mass Edit / Delete all: run it, then record the outcome."""

    def work(job, _heartbeat):
        outcome = _run_mass(job)
        return outcome, {"result": outcome}

    return _run_job(
        job_id,
        work,
        refused=CardEditError,
        unexpected="It failed unexpectedly. See the server log.",
        watch=_Heartbeat,
    )


# --- import of a large file ---------------------------------------------------------------------
# Two jobs, each one run of the worker with its own outcome: the check (the preview, nothing
# written) and, once the operator confirmed that preview, the import (all or nothing). Between
# them the upload waits encrypted in cards.import_storage, as the in-request preview's does.

IMPORT_CHECK, IMPORT_WRITE = "check", "import"
UPLOAD_GONE = (
    "The uploaded file is gone: it is kept 30 minutes at most, and only until it is imported. "
    "Upload it again."
)


def _import_refusal(actor) -> str | None:
    refusal = pin_import_refusal(actor)
    if refusal is None and not actor.has_perm("cards.add_topupcard"):
        refusal = "Importing cards needs the permission to add cards."
    return refusal


@transaction.atomic
def import_job_start(
    *, chunks: Iterable[bytes], file_format: str, file_name: str, rows: int, actor, ip_address=None
) -> CardJob:
    """Queue the check of an upload (its bytes in pieces) of about `rows` rows: the file waits
    encrypted for the worker (cards.import_storage), the job page shows the preview and offers
    the import."""
    refusal = _import_refusal(actor)
    if refusal:
        raise ImportRefused(refusal)
    upload = EncryptedImportStorage()
    upload.save_chunks(chunks)
    job = CardJob.objects.create(
        kind=CardJobKind.IMPORT,
        params={
            "stage": IMPORT_CHECK,
            "upload": upload.name,
            "file_name": file_name[:200],
            "format": file_format,
            "ip": ip_address,
            "reseller_id": None,  # importers are never limited to a reseller (pin_import_refusal)
        },
        total=max(rows, 1),
        requested_by=actor,
    )
    transaction.on_commit(lambda: _enqueue(run_import_job, job.pk))
    return job


def import_confirmable(job: CardJob, actor) -> str | None:
    """Why `actor` may not confirm the checked import `job`, or None."""
    if job.kind != CardJobKind.IMPORT or job.params.get("stage") != IMPORT_CHECK:
        return "This job is not the check of an import."
    if actor is None or job.requested_by_id != actor.pk:
        return "Only the operator who uploaded the file confirms its import."
    refusal = _import_refusal(actor)
    if refusal:
        return refusal
    if job.status != CardJobStatus.SUCCEEDED:
        return "The file has not been checked yet."
    if job.result.get("import_job"):
        return "This file was confirmed already."
    if job.result.get("error_rows") or not job.result.get("rows"):
        return (
            "Nothing can be imported while a row has a problem: fix the file and upload it again."
        )
    if not EncryptedImportStorage(name=job.params.get("upload", "")).exists():
        return UPLOAD_GONE
    return None


@transaction.atomic
def import_job_confirm(*, job: CardJob, actor) -> CardJob:
    """Queue the import of the file `job` checked, as the operator confirmed its preview."""
    job = CardJob.objects.select_for_update().get(pk=job.pk)  # one confirmation per check
    refusal = import_confirmable(job, actor)
    if refusal:
        raise ImportRefused(refusal)
    rows = job.result["rows"]
    imported = CardJob.objects.create(
        kind=CardJobKind.IMPORT,
        params={**job.params, "stage": IMPORT_WRITE, "check_job": job.pk},
        total=rows,
        requested_by=actor,
    )
    CardJob.objects.filter(pk=job.pk).update(result={**job.result, "import_job": imported.pk})
    transaction.on_commit(lambda: _enqueue(run_import_job, imported.pk))
    return imported


def _import(job: CardJob, reporter) -> tuple[int, dict]:
    params = job.params
    upload = EncryptedImportStorage(name=params["upload"])
    data = upload.open()  # inflated as it is read: the clear file is never whole in memory
    if data is None:
        raise ImportRefused(UPLOAD_GONE)
    try:
        if params["stage"] == IMPORT_CHECK:
            check = cards_import_check(
                data=data,
                file_format=params["format"],
                total=job.total,
                actor=job.requested_by,
                ip_address=params.get("ip"),
                progress=reporter,
            )
            if not check.valid:
                upload.remove()  # never confirmed: it goes now rather than when it expires
            return check.rows, {"result": check.as_json(), "done": check.rows}
        count = cards_import(
            data=data,
            file_format=params["format"],
            total=job.total,
            file_name=params["file_name"],
            actor=job.requested_by,
            ip_address=params.get("ip"),
            progress=reporter,
        )
    except ImportRefused:
        upload.remove()
        raise
    upload.remove()
    return count, {"result": {"imported": count}, "done": count}


@task()
def run_import_job(job_id: int) -> int | None:
    """The worker's side of an import: check the file, or import it once confirmed."""
    return _run_job(
        job_id,
        _import,
        refused=ImportRefused,
        unexpected="The import failed unexpectedly; no card was imported. See the server log.",
        watch=_ProgressReporter,
    )


# --- print orders (docs/printing.md) ---------------------------------------------------------


@transaction.atomic
def print_order_start(**request):
    """Record a print order (cards.services.printing.print_order_create, same arguments) and
    queue its production for the worker once the order row is committed."""
    from cards.services.printing import print_order_create

    order = print_order_create(**request)
    transaction.on_commit(lambda: _enqueue_print(order.pk))
    return order


def _enqueue_print(order_id: int) -> None:
    from .models import PrintOrder

    result = run_print_order.enqueue(order_id)
    PrintOrder.objects.filter(pk=order_id).update(task_id=str(result.id))


@task()
def run_print_order(order_id: int) -> int | None:
    """The worker's side of a print order: produce the encrypted file, record how it ended. An
    error says only what went wrong, never a card's data."""
    from cards.exceptions import PrintError
    from cards.services.printing import print_order_produce

    from .models import PrintOrder

    order = PrintOrder.objects.select_related("printer", "requested_by").get(pk=order_id)
    if order.status != CardJobStatus.QUEUED:
        logger.warning("Print order %s is %s already: not run again", order_id, order.status)
        return None
    PrintOrder.objects.filter(pk=order_id).update(
        status=CardJobStatus.RUNNING, started_at=timezone.now()
    )
    try:
        print_order_produce(order=order)
    except PrintError as error:
        PrintOrder.objects.filter(pk=order_id).update(
            status=CardJobStatus.FAILED, error=error.message, finished_at=timezone.now()
        )
        return None
    except Exception:
        logger.exception("Print order %s failed", order_id)
        PrintOrder.objects.filter(pk=order_id).update(
            status=CardJobStatus.FAILED,
            error="It failed unexpectedly; no file was stored. See the server log.",
            finished_at=timezone.now(),
        )
        raise
    return order_id
