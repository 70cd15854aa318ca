"""The import of a large file (docs/cards.md): two jobs, each one run of the worker with its own
outcome: the check (the preview, nothing written) and, once the operator confirmed that preview,
the import (all or nothing). Between them the upload waits encrypted in cards.import_storage, as
the in-request preview's does."""

from collections.abc import Iterable

from django.db import transaction

from cards.exceptions import ImportRefused
from cards.import_storage import EncryptedImportStorage
from cards.models import CardJob
from cards.models.jobs import CardJobKind, CardJobStatus
from cards.services.importing.checking import cards_import_check
from cards.services.importing.writing import cards_import
from cards.services.scope import pin_import_refusal

from . import run_import_job
from .runner import ProgressReporter, enqueue, run_job

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
    transaction.on_commit(lambda: enqueue(run_import_job, job.pk))
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
    transaction.on_commit(lambda: enqueue(run_import_job, imported.pk))
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


def import_job_run(job_id: int) -> int | None:
    """The worker's side of an import: check the file, or import it once confirmed."""
    return run_job(
        job_id,
        _import,
        refused=ImportRefused,
        unexpected="The import failed unexpectedly; no card was imported. See the server log.",
        watch=ProgressReporter,
    )
