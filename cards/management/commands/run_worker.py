"""`manage.py run_worker`: the background worker (django-tasks' `db_worker`) that outlives the
database (docs/cards.md, Background jobs).

The library's worker exits on the first database error it meets outside a task: after a
PostgreSQL restart it is gone, and queued jobs wait for a worker until someone starts one. This
one waits for the database to come back (retrying every few seconds) and carries on with the
queue. A task the outage cut short is recorded as failed and its card job, if the job could not
record its own failure, as interrupted: the database rolled back the transaction in progress, so
a generation applied nothing and a Mass Edit / Delete all exactly the chunks its page counts,
which Resume completes (cards.jobs.runner.job_interrupted). Options are db_worker's.
"""

import logging
import os
import time

from django.db import InterfaceError, OperationalError, connection, connections
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV, run_with_reloader
from django_tasks_db.compat import TaskResultStatus
from django_tasks_db.management.commands import db_worker

from cards.jobs.runner import job_interrupted

logger = logging.getLogger("django_tasks_db")

RETRY_SECONDS = (0.5, 1, 2, 5)
"""Waits between attempts to reach the database; the last one repeats."""

DATABASE_GONE = (OperationalError, InterfaceError)


class Worker(db_worker.Worker):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.in_flight = None

    def run(self) -> None:
        while True:
            try:
                return super().run()
            except DATABASE_GONE as error:
                logger.warning("The database is unavailable (%s): waiting for it.", error)
                if not self.wait_for_database():
                    return None
                self.report_interrupted(error)

    def run_task(self, db_task_result) -> None:
        # Left set when the task's outcome could not be recorded (the database went away).
        self.in_flight = db_task_result
        super().run_task(db_task_result)
        if db_task_result.status == TaskResultStatus.FAILED:
            # The database may be back before the task's failure is written (the library
            # retries that), but the job's own record of it may have been lost.
            job_interrupted(task_id=str(db_task_result.id))
        self.in_flight = None

    def wait_for_database(self) -> bool:
        """Until the database answers again (True), or the worker is told to stop (False)."""
        attempt = 0
        while self.running:
            connections.close_all()  # the old connections died with the server
            try:
                connection.ensure_connection()
                logger.warning("The database is back: the worker carries on.")
                return True
            except DATABASE_GONE:
                time.sleep(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)])
                attempt += 1
        return False

    def report_interrupted(self, error: Exception) -> None:
        task, self.in_flight = self.in_flight, None
        if task is None:
            return
        logger.warning("Task %s was interrupted by the outage: recorded as failed.", task.id)
        task.set_failed(error)
        job_interrupted(task_id=str(task.id))


class Command(db_worker.Command):
    help = "Run the background worker; it waits out a database outage instead of exiting."

    def handle(self, *, verbosity, queue_name, interval, batch, backend_name, startup_delay,
               reload, max_tasks, worker_id, exclude_queues, **options):  # fmt: skip
        # db_worker's own handle, with our Worker (the library builds its own by name).
        self.configure_logging(verbosity)
        if reload and batch:
            reload = False
        queue_names = queue_name.split(",")
        excluded = exclude_queues.split(",") if exclude_queues else []
        if excluded and "*" not in queue_names:
            raise db_worker.CommandError("--exclude-queues can only be used with --queue-name=*")
        worker = Worker(
            queue_names=queue_names,
            interval=interval,
            batch=batch,
            backend_name=backend_name,
            startup_delay=startup_delay,
            max_tasks=max_tasks,
            worker_id=worker_id,
            excluded_queue_names=excluded,
        )
        if reload:
            if os.environ.get(DJANGO_AUTORELOAD_ENV) == "true":
                worker.configure_signals()
            run_with_reloader(worker.run)
        else:
            worker.configure_signals()
            worker.run()
