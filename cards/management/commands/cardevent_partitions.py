from django.core.management.base import BaseCommand

from cards.services.partitions import MONTHS_AHEAD, cardevent_partitions_extend
from cards.tasks import cardevent_partitions_schedule


class Command(BaseCommand):
    help = (
        "PostgreSQL: make the card audit table's monthly partitions up to "
        f"{MONTHS_AHEAD} months ahead (run it from cron), or with --schedule queue the worker's "
        "daily task that does it (idempotent: run it at every deploy). Nothing to do on SQLite."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--schedule",
            action="store_true",
            help="Queue the recurring task on the worker (db_worker) unless it is queued already.",
        )

    def handle(self, *args, schedule=False, **options):
        if schedule:
            queued = cardevent_partitions_schedule()
            self.stdout.write(
                "Recurring partition task queued for the worker."
                if queued
                else "Recurring partition task already queued."
            )
            return
        result = cardevent_partitions_extend()
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(result.made)} partition(s) made ({', '.join(result.made) or 'none'}); "
                f"{result.moved} event(s) moved out of the default partition."
            )
        )
