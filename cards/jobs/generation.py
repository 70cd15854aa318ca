"""A large batch generated in the background (docs/cards.md, Background jobs).

`generation_job_start` validates the request the way the synchronous path does, records a
`CardJob` and queues `run_generation_job` once the job row is committed. The worker runs
`card_batch_generate`, whose single transaction makes the batch all-or-nothing, and reports
progress through a second database connection so the admin can show it while the batch's own
transaction is still open."""

import datetime as dt
from decimal import Decimal

from django.db import transaction

from cards.exceptions import GenerationError
from cards.models import CardJob
from cards.services.generation import card_batch_generate, generation_request_check, pin_space_check
from subscribers.models import Reseller

from . import run_generation_job
from .runner import ProgressReporter, enqueue, run_job


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
    transaction.on_commit(lambda: enqueue(run_generation_job, job.pk))
    return job


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


def generation_job_run(job_id: int) -> int | None:
    """The worker's side: generate the batch, then record the outcome on the job."""
    return run_job(
        job_id,
        _generate,
        refused=GenerationError,
        unexpected="The generation failed unexpectedly; no card was created. See the server log.",
        watch=ProgressReporter,
    )
