"""The worker's recurring task: the card audit table's monthly partitions made ahead of time.

As wallets.tasks does for intervals: the task queues its next run (EVERY later) before it does
its work, and `cardevent_partitions_schedule` starts the chain, safe at every deploy
(`manage.py cardevent_partitions --schedule`). Should the chain stop, events still have a place
(the DEFAULT partition) and the next run moves them into their month.

The task is stored by its import path (`cards.tasks.extend_cardevent_partitions`): it stays here.
"""

import datetime as dt

from django.db import transaction
from django.utils import timezone
from django_tasks import task
from django_tasks_db.models import DBTaskResult

from wallets.sql import advisory_lock

from .services.partitions import cardevent_partitions_extend

EVERY = dt.timedelta(days=1)


@task()
def extend_cardevent_partitions() -> int:
    """Queue the next run, then make the months ahead. Returns how many partitions were made."""
    cardevent_partitions_schedule(at=timezone.now() + EVERY)
    return len(cardevent_partitions_extend().made)


def cardevent_partitions_schedule(*, at: dt.datetime | None = None) -> bool:
    """Queue `extend_cardevent_partitions` at `at` (now by default) unless a run is waiting;
    returns whether it queued one."""
    with transaction.atomic():
        advisory_lock("cards.tasks.extend_cardevent_partitions")
        waiting = DBTaskResult.objects.filter(
            task_path=extend_cardevent_partitions.module_path, status="READY"
        ).exists()
        if waiting:
            return False
        extend_cardevent_partitions.using(run_after=at).enqueue()
        return True
