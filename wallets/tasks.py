"""The worker's recurring task: periodic balances get their intervals ahead of time.

django-tasks has no schedule of its own, so the task queues its next run (EVERY later) before it
does its work: a failure or a killed worker still leaves the next run queued. `intervals_schedule`
starts it and is safe to run at every deploy (`manage.py extend_intervals --schedule`, also run by
`make run`): it queues a run only when none is waiting. Should the chain ever stop, top-ups,
adjustments and readings still make the interval they need (wallets/services/intervals.py).

The task is stored by its import path (`wallets.tasks.extend_periodic_intervals`): it stays here.
"""

import datetime as dt

from django.db import transaction
from django.utils import timezone
from django_tasks import task
from django_tasks_db.models import DBTaskResult

from .services.intervals import periodic_intervals_extend
from .sql import advisory_lock

# Shorter than INTERVALS_AHEAD (7 days), so an interval exists well before its period begins.
EVERY = dt.timedelta(hours=1)


@task()
def extend_periodic_intervals() -> int:
    """Queue the next run, then make the intervals every periodic balance needs by a week from
    now. Returns how many intervals were made."""
    intervals_schedule(at=timezone.now() + EVERY)
    return periodic_intervals_extend()


def intervals_schedule(*, at: dt.datetime | None = None) -> bool:
    """Queue `extend_periodic_intervals` to run at `at` (now by default) unless a run is already
    waiting; returns whether it queued one. Concurrent callers take turns (an advisory lock), so
    two workers or two deploys never start a second chain."""
    with transaction.atomic():
        advisory_lock("wallets.tasks.extend_periodic_intervals")
        waiting = DBTaskResult.objects.filter(
            task_path=extend_periodic_intervals.module_path, status="READY"
        ).exists()
        if waiting:
            return False
        extend_periodic_intervals.using(run_after=at).enqueue()
        return True
