"""The worker's recurring task: the finance reports' daily summaries take each day once it closed.

As wallets.tasks: the task queues its next run before it works, and `summary_schedule` starts the
chain (`manage.py summarize_reports --schedule`, at every deploy), never a second one. Without a
worker, run `manage.py summarize_reports` from cron. Should the chain stop, the reports stay right:
they replay the days the summary does not hold yet, only more slowly (reports/README.md).

The task is stored by its import path (`reports.tasks.summarize_closed_days`): it stays here.
"""

import datetime as dt

from django.db import transaction
from django.utils import timezone
from django_tasks import task
from django_tasks_db.models import DBTaskResult

from wallets.sql import advisory_lock

from .services.day_summaries import day_summaries_extend
from .services.summary import movement_summary_extend

EVERY = dt.timedelta(hours=1)


@task()
def summarize_closed_days() -> int:
    """Queue the next run, then summarize the days closed since the last one (rows written):
    the liability movements, the redemptions and the ledger's flows."""
    summary_schedule(at=timezone.now() + EVERY)
    return movement_summary_extend() + day_summaries_extend()


def summary_schedule(*, at: dt.datetime | None = None) -> bool:
    """Queue `summarize_closed_days` at `at` (now by default) unless a run is already waiting;
    returns whether it queued one."""
    with transaction.atomic():
        advisory_lock("reports.tasks.summarize_closed_days")
        waiting = DBTaskResult.objects.filter(
            task_path=summarize_closed_days.module_path, status="READY"
        ).exists()
        if waiting:
            return False
        summarize_closed_days.using(run_after=at).enqueue()
        return True
