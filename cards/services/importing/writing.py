"""Writing the cards of a checked import file, and the import service: the file is checked
again in the import's own transaction (cards may have been written since the preview), then its
staged rows move into the cards with INSERT … SELECT: all of them or none."""

from typing import BinaryIO

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from cards.events import PinsChecked, cards_imported_event
from cards.exceptions import CardPermissionDenied, ImportRefused
from cards.services.scope import series_claim
from cards.sql import importing as sql
from subscribers.models import Reseller

from .checking import (
    ImportCheck,
    import_check,
    record_pins_checked,
    refusal_message,
    refuse_unless_allowed,
)
from .reading import file_rows

WRITE_SLICE = 50_000
"""Cards moved per INSERT … SELECT: the import's progress steps."""
MEANWHILE_MESSAGE = "a card with the same serial or PIN was written meanwhile"


def import_write(*, check: ImportCheck, actor, file_name: str, progress=None) -> int:
    """Write the cards `import_check` staged and passed, in the same transaction: claim their
    series under the series lock, move the rows, record the import. Raises ImportRefused when a
    series was claimed by another reseller meanwhile, IntegrityError when a card with one of their
    serials or PINs was committed meanwhile."""
    if not check.valid:
        raise ImportRefused(refusal_message(check))
    pairs = sql.import_stage_series()
    resellers = Reseller.objects.in_bulk({r for _, r in pairs if r is not None})
    for series, reseller_id in pairs:
        try:
            series_claim(actor=actor, series=series, reseller=resellers.get(reseller_id))
        except CardPermissionDenied as error:
            raise ImportRefused(f"Nothing was imported: {error.message}") from None
    now = timezone.now()
    written = 0
    for first in range(1, check.rows + 1, WRITE_SLICE):
        written += sql.import_stage_write(first=first, last=first + WRITE_SLICE - 1, created_at=now)
        if progress:
            progress(written, check.rows)
    cards_imported_event(
        first_serial=check.first_serial, rows=written, file_name=file_name, actor=actor
    )
    return written


def cards_import(
    *,
    data: bytes | BinaryIO,
    file_format: str,
    file_name: str,
    actor,
    total=0,
    ip_address=None,
    progress=None,
) -> int:
    """Import an upload: check every row again (cards may have been written since the preview),
    then write them all in one transaction, or nothing (ImportRefused, with the rows and
    reasons). Returns how many cards were imported."""
    refuse_unless_allowed(actor)
    holder: list[ImportCheck] = []

    def checked(done, total):
        if progress:  # reading and checking is about the first half of the work
            progress(done // 2, total)

    def written(done, total):
        if progress:
            progress(total // 2 + done // 2, total)

    try:
        with transaction.atomic():
            header, rows = file_rows(data, file_format)
            check = import_check(
                header=header, rows=rows, actor=actor, total=total, progress=checked
            )
            holder.append(check)
            try:
                with transaction.atomic():
                    count = import_write(
                        check=check, actor=actor, file_name=file_name, progress=written
                    )
            except IntegrityError:
                raise ImportRefused(f"Nothing was imported: {MEANWHILE_MESSAGE}.") from None
            if connection.vendor != "postgresql":
                sql.import_stage_drop()
    finally:
        record_pins_checked(
            holder[0] if holder else None,
            what=PinsChecked.IMPORT,
            actor=actor,
            ip_address=ip_address,
        )
    return count
