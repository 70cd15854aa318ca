"""Generate a series of top-up cards from the command line (same service as the admin)."""

import datetime as dt
import sys
import time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from cards.exceptions import GenerationError
from cards.management.progress import ProgressBar
from cards.models.formats import PIN_DEFAULT_LENGTH
from cards.services.generation import card_batch_generate
from common.querylog import bounded_query_log
from subscribers.models import Reseller


def parse_expiry(value: str) -> dt.datetime:
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise CommandError(f"--expires: {value!r} is not a date (YYYY-MM-DD[ HH:MM[:SS]]).")
        moment = dt.datetime.combine(day, dt.time.min)
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


class Command(BaseCommand):
    help = "Generate top-up cards: sequential serials in a series, random PINs, all or nothing."

    def add_arguments(self, parser):
        parser.add_argument("--series", required=True, help="1 to 6 digits")
        parser.add_argument("--quantity", required=True, type=int)
        parser.add_argument("--amount", required=True)
        parser.add_argument("--currency", default="USD")
        parser.add_argument("--pin-length", type=int, default=PIN_DEFAULT_LENGTH)
        parser.add_argument("--reseller", default=None, help="reseller name (none when omitted)")
        parser.add_argument("--expires", required=True, help="YYYY-MM-DD or YYYY-MM-DD HH:MM")
        parser.add_argument(
            "--dormant", action="store_true", help="not redeemable until the box is delivered"
        )

    def handle(self, *args, **options):
        reseller = None
        if options["reseller"]:
            reseller = Reseller.objects.filter(name=options["reseller"]).first()
            if reseller is None:
                raise CommandError(f"--reseller: no reseller is named {options['reseller']!r}.")
        started = time.monotonic()
        stream = self.stdout._out if hasattr(self.stdout, "_out") else sys.stdout
        try:
            with bounded_query_log():
                result = card_batch_generate(
                    series=options["series"],
                    quantity=options["quantity"],
                    amount=options["amount"],
                    currency=options["currency"],
                    pin_length=options["pin_length"],
                    reseller=reseller,
                    expires_at=parse_expiry(options["expires"]),
                    dormant=options["dormant"],
                    progress=ProgressBar(stream),
                )
        except GenerationError as error:
            name = {"expires_at": "expires"}.get(error.field, error.field)
            option = f"--{name.replace('_', '-')}: " if name else ""
            raise CommandError(f"{option}{error.message}") from None
        batch = result.batch
        self.stdout.write(
            f"Generated {batch.quantity:,} cards {batch.first_serial} … {batch.last_serial}, "
            f"{batch.amount} {batch.currency}, PIN length {batch.pin_length}, "
            f"reseller {batch.reseller or '—'}, expire {batch.expires_at:%Y-%m-%d %H:%M}, "
            f"batch {batch.pk}, in {time.monotonic() - started:.1f} s."
        )
