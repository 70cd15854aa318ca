from django.core.management.base import BaseCommand

from reports.services.day_summaries import day_summaries_extend, day_summaries_rebuild
from reports.services.summary import movement_summary_extend, movement_summary_rebuild
from reports.tasks import summary_schedule


class Command(BaseCommand):
    help = (
        "Add the days closed since the last run to the finance reports' daily summaries (run it "
        "from cron), or with --schedule queue the worker's recurring task that does it every "
        "hour (idempotent: run it at every deploy); --rebuild forgets the summaries and builds "
        "them again from the audit events, the cards and the ledger."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--schedule",
            action="store_true",
            help="Queue the recurring task on the worker (db_worker) unless it is queued already.",
        )
        parser.add_argument("--rebuild", action="store_true", help="Build the whole summary again.")

    def handle(self, *args, schedule=False, rebuild=False, **options):
        if schedule:
            queued = summary_schedule()
            self.stdout.write(
                "Recurring report summary task queued for the worker."
                if queued
                else "Recurring report summary task already queued."
            )
            return
        rows = movement_summary_rebuild() if rebuild else movement_summary_extend()
        self.stdout.write(self.style.SUCCESS(f"{rows} movement row(s) summarized."))
        rows = day_summaries_rebuild() if rebuild else day_summaries_extend()
        self.stdout.write(self.style.SUCCESS(f"{rows} redemption and ledger row(s) summarized."))
