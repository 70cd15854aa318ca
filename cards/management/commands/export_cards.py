import sys

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS

from cards.exports import export_with_audit
from cards.management.progress import ProgressBar
from cards.models import TopUpCard
from cards.models.cards import CardStatus
from cards.models.formats import SERIES_FORMAT
from common.querylog import bounded_query_log
from common.replicas import after_all_commits
from wallets.models import Channel


class Command(BaseCommand):
    help = "Stream a series of cards as CSV (serial order, constant memory)."

    def add_arguments(self, parser):
        parser.add_argument("--series", required=True, help="Series to export, e.g. 4.")
        parser.add_argument(
            "--status", action="append", choices=CardStatus.values, help="Only these statuses."
        )
        parser.add_argument("--output", help="File to write (default: standard output).")
        parser.add_argument(
            "--with-pins", action="store_true", help="Write clear PINs (audited). Default: masked."
        )
        parser.add_argument("--actor", help="Username recorded in the audit event.")

    def handle(self, *args, series, status, output, with_pins, actor, **options):
        if not SERIES_FORMAT.fullmatch(series):
            raise CommandError("--series must be 1 to 6 digits.")
        user = None
        if actor:
            user = get_user_model().objects.filter(username=actor).first()
            if user is None:
                raise CommandError(f"No user named {actor!r}.")
        cards = TopUpCard.objects.filter(series=series)
        if status:
            selected = TopUpCard.objects.none()
            for one in status:
                selected = selected | TopUpCard.objects.with_status(one)
            cards = cards.filter(pk__in=selected.values("pk"))
        cards = after_all_commits(cards)
        total = cards.count()
        bar = ProgressBar(sys.stderr)
        stream = open(output, "wb") if output else sys.stdout.buffer  # noqa: SIM115
        try:
            with bounded_query_log():
                for block in export_with_audit(
                    cards,
                    actor=user,
                    with_pins=with_pins,
                    description={"series": series, "status": status or []},
                    channel=Channel.SYSTEM,
                    progress=lambda rows: bar(rows, total),
                ):
                    stream.write(block)
        finally:
            if output:
                stream.close()
            else:
                stream.flush()
        target = output or "standard output"
        pins = "with PINs" if with_pins else "PINs masked"
        source = "the primary" if cards.db == DEFAULT_DB_ALIAS else cards.db
        self.stderr.write(
            f"Exported {total:,} cards of series {series} to {target} ({pins}), read from {source}."
        )
