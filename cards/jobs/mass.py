"""Mass Edit and Delete all of a selection too large for one request (docs/cards.md, Mass Edit
and Delete all jobs: chunks, progress, resume).

`mass_edit_job_start` / `delete_all_job_start` keep the Advanced Search parameters the operator
confirmed and the count they saw. The worker rebuilds the selection with `card_list` scoped to
that operator, writes its card ids once (the count must be the confirmed one), then changes them
in chunks of MASS_EDIT_CHUNK_SIZE cards, each its own short transaction that also records its
counts on the job (cards.services.selection): a sale waits for one chunk at most, the job page
shows the percentage done, and a job cut short has done exactly what it reports;
`mass_job_resume` queues it again to do the rest."""

import datetime as dt
import logging
import threading

from django.conf import settings
from django.db import connection, connections, transaction

from cards.exceptions import CardEditError, CardPermissionDenied
from cards.models import CardJob
from cards.models.jobs import CardJobKind, CardJobStatus
from cards.selectors import InvalidCardSearch, card_list
from cards.services.mass_edit import EXPIRE_NOW
from cards.services.selection import job_chunk_delete, job_chunk_edit, job_selection_snapshot
from subscribers.models import Reseller
from subscribers.selectors import staff_reseller

from . import run_mass_job
from .runner import enqueue, run_job, worker_can_search

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0
EXPIRED_NOW = "now"
"""A Mass Edit job's stored `expires_at` for "expire now" (cards.services.mass_edit.EXPIRE_NOW)."""


def _mass_job_start(*, kind, filters: dict, expected: int, actor, extra: dict) -> CardJob:
    if not worker_can_search(filters):
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
    transaction.on_commit(lambda: enqueue(run_mass_job, job.pk))
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
    transaction.on_commit(lambda: enqueue(run_mass_job, job.pk))
    job.refresh_from_db()
    return job


def mass_job_run(job_id: int) -> dict | None:
    """The worker's side of Mass Edit / Delete all: run it, then record the outcome."""

    def work(job, _heartbeat):
        outcome = _run_mass(job)
        return outcome, {"result": outcome}

    return run_job(
        job_id,
        work,
        refused=CardEditError,
        unexpected="It failed unexpectedly. See the server log.",
        watch=_Heartbeat,
    )
