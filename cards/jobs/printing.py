"""Print orders produced in the background (docs/printing.md): the order is recorded in the
request, the worker makes the encrypted print file."""

import logging

from django.db import transaction
from django.utils import timezone

from cards.exceptions import PrintError
from cards.models import PrintOrder
from cards.models.jobs import CardJobStatus
from cards.services.printing import print_order_create, print_order_produce

from . import run_print_order

logger = logging.getLogger(__name__)


@transaction.atomic
def print_order_start(**request) -> PrintOrder:
    """Record a print order (cards.services.printing.print_order_create, same arguments) and
    queue its production for the worker once the order row is committed."""
    order = print_order_create(**request)
    transaction.on_commit(lambda: _enqueue_print(order.pk))
    return order


def _enqueue_print(order_id: int) -> None:
    result = run_print_order.enqueue(order_id)
    PrintOrder.objects.filter(pk=order_id).update(task_id=str(result.id))


def print_order_run(order_id: int) -> int | None:
    """The worker's side of a print order: produce the encrypted file, record how it ended. An
    error says only what went wrong, never a card's data."""
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
