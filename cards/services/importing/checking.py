"""Checking an import file as a whole (docs/cards.md, "Import"), and the preview service.

The rows RowReader has read go into a temporary table in chunks, one round trip each
(cards.sql.importing), with one look-up per chunk of the chunk's PINs under every older
digest key. The checks across rows and against the cards (a serial or PIN twice in the file, a
serial or PIN a card has, the series rule) are then a few statements over the whole table.
"""

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from django.db import transaction

from cards.events import PinsChecked, pins_checked_event
from cards.exceptions import ImportRefused
from cards.models import CardSeries, TopUpCard
from cards.models.formats import format_serial
from cards.services.scope import SeriesOwner, pin_import_refusal, series_owner
from cards.services.scope import series_refusal as scope_series_refusal
from cards.sql import importing as sql

from .reading import FIELDS, RowErrors, RowReader, file_rows

CHUNK = 5_000
"""Rows per round trip: also the PIN look-up's IN list (SQLite allows 32,766 parameters)."""
ERRORS_KEPT = 1_000
"""Rows with a problem a preview lists (a file of a million rows may be all wrong: its count
is given, the list stops here)."""
SHOWN_IN_MESSAGE = 5
PIN_TWICE_MESSAGE = "This PIN appears twice in the file."

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ImportCheck:
    """What the check of a file found."""

    rows: int
    error_rows: int
    """Rows with at least one problem (nothing can be imported while there is one)."""
    errors: list[tuple[int, RowErrors]] = field(default_factory=list)
    """The first ERRORS_KEPT rows with a problem: (row number from 1, {field: [messages]})."""
    checked: int = 0
    """Distinct PINs looked up among the cards."""
    matched: int = 0
    """How many of them a card has."""
    first_serial: str = ""

    @property
    def valid(self) -> bool:
        return self.rows > 0 and self.error_rows == 0

    def as_json(self) -> dict:
        return {
            "rows": self.rows,
            "error_rows": self.error_rows,
            "errors": [[number, errors] for number, errors in self.errors],
            "checked": self.checked,
            "matched": self.matched,
        }


def refusal_message(check: ImportCheck) -> str:
    """Why nothing was imported, by row: "Nothing was imported: row 2: Card … has this PIN
    already." (never a database error's text: it names the clashing key, a PIN's digest)."""
    if check.rows == 0:
        return "Nothing was imported: the file has no rows."
    reasons = [
        f"row {number}: " + " ".join(m for name in FIELDS for m in errors.get(name, ()))
        for number, errors in check.errors[:SHOWN_IN_MESSAGE]
    ]
    more = check.error_rows - len(reasons)
    text = "Nothing was imported: " + "; ".join(reasons)
    if more > 0:
        text += f" (and {more:,} more rows)"
    return text if text.endswith(".") else text + "."


def _taken(digests: list[bytes], current: dict[bytes, bytes]) -> dict[bytes, str]:
    """Current-key digest of each PIN a card has under an older key → that card's serial: one
    query (the current key's digests are joined with the cards once all rows are staged)."""
    if not digests:
        return {}
    found = TopUpCard.objects.filter(pin_digest__in=digests).values_list(
        "pin_digest", "series", "number"
    )
    return {current[bytes(d)]: format_serial(series, number) for d, series, number in found}


def _stage(header: list[str], rows: Iterable[Sequence], total: int, progress) -> str:
    reader = RowReader(header)
    chunk: list[tuple] = []
    every_key: dict[bytes, bytes] = {}
    line = 0

    def flush():
        taken = _taken(list(every_key), every_key)
        if taken:
            for index, staged in enumerate(chunk):
                if staged[5] in taken:
                    chunk[index] = (*staged[:13], taken[staged[5]])
        sql.import_stage_rows(chunk)
        chunk.clear()
        every_key.clear()

    for values in rows:
        if not values or all(v is None for v in values):
            continue  # a blank line, a spreadsheet's empty trailing rows: no row (as tablib)
        line += 1
        staged, digests = reader.row(line, values)
        chunk.append(staged)
        for digest in digests[1:]:  # older keys only: the current one is staged
            every_key[digest] = digests[0]
        if len(chunk) == CHUNK:
            flush()
            if progress:
                progress(line, max(total, line))
    if chunk:
        flush()
    return reader.first_serial or ""


def _series_refusals(actor) -> None:
    """The series rule (cards.services.scope), once per series and reseller: a series belongs to
    its owner, and the file's first row of a series nobody used claims it for the rows after it."""
    pairs = sql.import_stage_findings()
    if not pairs:
        return
    names = {series for series, _, _ in pairs}
    owners = {
        series: SeriesOwner(reseller_id)
        for series, reseller_id in CardSeries.objects.filter(series__in=names).values_list(
            "series", "reseller_id"
        )
    }
    refusals = []
    for series, reseller_id, _first in pairs:  # in the order of their first row
        if series not in owners:
            owners[series] = series_owner(series) or SeriesOwner(reseller_id)
        message = scope_series_refusal(
            actor=actor, series=series, reseller_id=reseller_id, owner=owners[series]
        )
        if message:
            refusals.append((message, series, reseller_id))
    sql.import_stage_refuse_series(refusals)


def _row_errors(found: tuple) -> RowErrors:
    line, series, number, problems, serial_twice, serial_exists, pin_twice, taken_by, refusal = (
        found
    )
    errors: RowErrors = json.loads(problems) if problems else {}
    serial = format_serial(series, number) if series is not None else ""
    if "serial" not in errors:
        if serial_twice:
            errors["serial"] = [f"Serial Number {serial} appears twice in the file."]
        elif serial_exists:
            errors["serial"] = [f"Serial Number {serial} exists already."]
        elif refusal:
            errors["serial"] = [refusal]
    if "pin" not in errors:
        if pin_twice:
            errors["pin"] = [PIN_TWICE_MESSAGE]
        elif taken_by:
            # Only who may see every PIN imports (pin_import_refusal): naming the card tells them
            # nothing they could not look up.
            errors["pin"] = [f"Card {taken_by} has this PIN already."]
    return {name: errors[name] for name in FIELDS if name in errors}


def import_check(
    *,
    header: list[str],
    rows: Iterable[Sequence],
    actor,
    total: int = 0,
    progress: Progress | None = None,
    keep: int = ERRORS_KEPT,
) -> ImportCheck:
    """Check every row of a file (`header`, then `rows` of cells in its order), leaving them
    staged for `import_write`. Runs inside the caller's transaction, whose end drops the staged
    rows. Refuses a file without the needed columns (ImportRefused)."""
    sql.import_stage_create()
    first_serial = _stage(header, rows, total, progress)
    _series_refusals(actor)
    error_rows, checked, matched, count = sql.import_stage_summary()
    errors = [(found[0], _row_errors(found)) for found in sql.import_stage_problems(keep)]
    return ImportCheck(
        rows=count,
        error_rows=error_rows,
        errors=errors,
        checked=checked,
        matched=matched,
        first_serial=first_serial,
    )


def record_pins_checked(check: ImportCheck | None, *, what: str, actor, ip_address) -> None:
    """The `pins_checked` audit of a check, for both services (docs/reliability.md, "No PIN
    oracle")."""
    # Outside the import's transaction, which a preview or a refusal rolls back.
    if check is not None and check.checked:
        pins_checked_event(
            what=what,
            checked=check.checked,
            matched=check.matched,
            actor=actor,
            ip_address=ip_address,
        )


def refuse_unless_allowed(actor) -> None:
    """Who may import, for both services: an active operator with `cards.view_pin` not limited
    to a reseller and the permission to add cards (a job's operator may have lost any of it since
    the upload)."""
    if actor is None:
        return
    refusal = pin_import_refusal(actor)
    if refusal is None and not actor.has_perm("cards.add_topupcard"):
        refusal = "Importing cards needs the permission to add cards."
    if refusal or not actor.is_active:
        raise ImportRefused(refusal or "The operator who started it is no longer allowed to.")


def cards_import_check(
    *, data: bytes | BinaryIO, file_format: str, actor, total=0, ip_address=None, progress=None
) -> ImportCheck:
    """Preview an upload (its bytes or a binary file of about `total` rows): check every row,
    write nothing (but the `pins_checked` audit)."""
    refuse_unless_allowed(actor)
    check = None
    try:
        with transaction.atomic():
            header, rows = file_rows(data, file_format)
            check = import_check(
                header=header, rows=rows, actor=actor, total=total, progress=progress
            )
            transaction.set_rollback(True)  # the staged rows go with it, on every database
    finally:
        record_pins_checked(
            check, what=PinsChecked.IMPORT_PREVIEW, actor=actor, ip_address=ip_address
        )
    return check
