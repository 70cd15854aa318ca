from django.core.management.base import BaseCommand

from wallets.services.intervals import INTERVALS_AHEAD, periodic_intervals_extend
from wallets.tasks import intervals_schedule


class Command(BaseCommand):
    help = (
        "Make every live periodic balance's intervals reach a week ahead (run it from cron), or "
        "with --schedule queue the worker's recurring task that does it every hour (idempotent: "
        "run it at every deploy)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--schedule",
            action="store_true",
            help="Queue the recurring task on the worker (db_worker) unless it is queued already.",
        )

    def handle(self, *args, schedule=False, **options):
        if schedule:
            queued = intervals_schedule()
            self.stdout.write(
                "Recurring interval task queued for the worker."
                if queued
                else "Recurring interval task already queued."
            )
            return
        made = periodic_intervals_extend()
        self.stdout.write(
            self.style.SUCCESS(
                f"{made} periodic interval(s) made, up to {INTERVALS_AHEAD.days} days ahead."
            )
        )
