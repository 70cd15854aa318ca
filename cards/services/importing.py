"""Importing cards from another system's file (docs/cards.md, "Import"): the one owner of the
import rules, for the preview in the request (cards.resources) and the background job
(cards.jobs) alike.

Each row's own checks (serial, amount, currency, PIN, expiry, reseller name) run in Python as the
row is read, and its clear PIN is replaced at once by the digest and the encrypted copy. Rows go
into a temporary table in chunks, one round trip each (cards.sql.import_stage_rows), with one
look-up per chunk of the chunk's PINs under every digest key. The checks across rows and against
the cards (a serial or PIN twice in the file, a serial or PIN a card has, the series rule) are
then a few statements over the whole table. The import re-runs the same check inside its own
transaction and moves the rows into the cards with INSERT … SELECT: all of them or none.
"""

import csv
import datetime as dt
import hmac
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import BinaryIO

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from cards import pins, sql
from cards.events import PinsChecked, cards_imported_event, pins_checked_event
from cards.exceptions import CardPermissionDenied, ImportRefused
from cards.exports import COLUMNS
from cards.models import (
    CURRENCY_FORMAT,
    CURRENCY_MESSAGE,
    PIN_MAX_LENGTH,
    PIN_MIN_LENGTH,
    SERIAL_NUMBER_DIGITS,
    SERIES_FORMAT,
    CardSeries,
    TopUpCard,
    format_serial,
)
from cards.services.scope import SeriesOwner, pin_import_refusal, series_claim, series_owner
from cards.services.scope import series_refusal as scope_series_refusal
from subscribers.models import Reseller

SERIAL, AMOUNT, CURRENCY, PIN, RESELLER, _STATUS, EXPIRY, _ACTIVATED, _CREATED = COLUMNS
REQUIRED_COLUMNS = (SERIAL, AMOUNT, CURRENCY, PIN, EXPIRY)
FIELDS = ("serial", "amount", "currency", "pin", "reseller", "expires_at")
"""The error keys of a row, in the order the preview lists them."""

CHUNK = 5_000
"""Rows per round trip: also the PIN look-up's IN list (SQLite allows 32,766 parameters)."""
WRITE_SLICE = 50_000
"""Cards moved per INSERT … SELECT: the import's progress steps."""
ERRORS_KEPT = 1_000
"""Rows with a problem a preview lists (a file of a million rows may be all wrong: its count
is given, the list stops here)."""
SHOWN_IN_MESSAGE = 5
_MEMO = 10_000  # distinct amounts or expiry texts remembered while reading a file

_SERIAL = re.compile(rf"({SERIES_FORMAT.pattern})-([0-9]{{1,{SERIAL_NUMBER_DIGITS}}})")
_CENT = Decimal("0.01")
SERIAL_MESSAGE = "Serial Number must look like 4-000000123."
AMOUNT_MESSAGE = "Amount must be a number greater than zero."
DECIMALS_MESSAGE = "Amount may have at most 2 decimal places."
EXPIRY_MESSAGE = "Expiry Date must be a date such as 2027-12-31 00:00:00+00:00."
PIN_DIGITS_MESSAGE = "PIN must be digits only."
PIN_LENGTH_MESSAGE = f"PIN must be {PIN_MIN_LENGTH} to {PIN_MAX_LENGTH} digits long."
PIN_TWICE_MESSAGE = "This PIN appears twice in the file."
MEANWHILE_MESSAGE = "a card with the same serial or PIN was written meanwhile"

Progress = Callable[[int, int], None]
RowErrors = dict[str, list[str]]


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


# --- reading a file -----------------------------------------------------------------------------


def parse_time(text: str) -> dt.datetime:
    """An ISO date or date-time; a naive one is taken as UTC."""
    text = text.strip()
    if text.endswith(" UTC"):
        text = text[:-4] + "+00:00"
    value = dt.datetime.fromisoformat(text)
    return value if timezone.is_aware(value) else value.replace(tzinfo=dt.UTC)


def _cell(value) -> str:
    return "" if value is None else str(value).strip()


def file_rows(source: bytes | BinaryIO, file_format: str) -> tuple[list[str], Iterator[Sequence]]:
    """The header and an iterator over the rows of a CSV or XLSX upload (its bytes, or a binary
    file), read as it goes."""
    stream = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    if file_format == "xlsx":
        import openpyxl

        if not stream.seekable():
            stream = io.BytesIO(stream.read())
        book = openpyxl.load_workbook(stream, read_only=True, data_only=True)
        rows = book.active.iter_rows(values_only=True)
    else:
        rows = csv.reader(io.TextIOWrapper(stream, encoding="utf-8-sig", newline=""))
    try:
        header = [_cell(name) for name in next(rows)]
    except StopIteration:
        header = []
    except (UnicodeDecodeError, csv.Error) as error:
        raise ImportRefused("The file could not be read as CSV in UTF-8.") from error
    return header, rows


def count_rows(chunks: Iterable[bytes], file_format: str) -> int:
    """About how many rows an upload (its bytes in pieces) has, without reading them: whether
    to check it in the request or in the background (an XLSX says it in its dimension)."""
    if file_format == "xlsx":
        import openpyxl

        try:
            book = openpyxl.load_workbook(io.BytesIO(b"".join(chunks)), read_only=True)
            return max((book.active.max_row or 1) - 1, 0)
        except Exception:  # an unreadable file: the check says why
            return 0
    lines, last = 0, b"\n"
    for chunk in chunks:
        if chunk:
            lines, last = lines + chunk.count(b"\n"), chunk
    return max(lines - (1 if last.endswith(b"\n") else 0), 0)


# --- the check ----------------------------------------------------------------------------------


class _Reader:
    """Turns rows into staged tuples (cards.sql.IMPORT_STAGE_COLUMNS) and per-row problems."""

    def __init__(self, header: list[str]):
        missing = [name for name in REQUIRED_COLUMNS if name not in header]
        if missing:
            raise ImportRefused(f"The file has no column {', '.join(missing)}.")
        self.at = {name: header.index(name) for name in (*REQUIRED_COLUMNS,)}
        self.at[RESELLER] = header.index(RESELLER) if RESELLER in header else None
        self.width = len(header)
        self.resellers = dict(Reseller.objects.order_by("-pk").values_list("name", "pk"))
        self.keys = pins.digest_keys()
        self.encrypt = pins.pin_encrypter()
        self.first_serial = None
        self.amounts: dict[str, tuple[Decimal | None, str]] = {}
        self.expiries: dict[str, dt.datetime | None] = {}

    def _amount(self, value) -> tuple[Decimal | None, str]:
        """(amount, problem) of a cell; a file has few distinct amounts, each parsed once."""
        text = _cell(value)
        if text not in self.amounts:
            if len(self.amounts) > _MEMO:
                self.amounts.clear()
            try:
                amount = Decimal(text)
                if not amount.is_finite() or amount <= 0:
                    raise InvalidOperation
                if amount != amount.quantize(_CENT):
                    self.amounts[text] = None, DECIMALS_MESSAGE
                else:
                    self.amounts[text] = amount, ""
            except InvalidOperation:
                self.amounts[text] = None, AMOUNT_MESSAGE
        return self.amounts[text]

    def _expiry(self, value) -> dt.datetime | None:
        """The expiry of a cell, None if it is not a date; each distinct text parsed once."""
        text = _cell(value)
        if text not in self.expiries:
            if len(self.expiries) > _MEMO:
                self.expiries.clear()
            try:
                self.expiries[text] = parse_time(text)
            except ValueError:
                self.expiries[text] = None
        return self.expiries[text]

    def row(self, line: int, values: Sequence) -> tuple[tuple, list[bytes]]:
        """The staged row of file row `line`, and its PIN's digests under every key."""
        at = self.at
        if len(values) < self.width:
            values = [*values, *([None] * (self.width - len(values)))]
        problems: RowErrors = {}
        serial = _cell(values[at[SERIAL]])
        if self.first_serial is None:
            self.first_serial = serial
        series = number = None
        match = _SERIAL.fullmatch(serial)
        if match and int(match.group(2)):
            series, number = match.group(1), int(match.group(2))
        else:
            problems["serial"] = [SERIAL_MESSAGE]
        amount, problem = self._amount(values[at[AMOUNT]])
        if problem:
            problems["amount"] = [problem]
        currency = _cell(values[at[CURRENCY]]).upper()
        if not CURRENCY_FORMAT.fullmatch(currency):
            problems["currency"] = [CURRENCY_MESSAGE]
        pin = pins.normalize_pin(_cell(values[at[PIN]]))
        digest = encrypted = last4 = length = None
        digests: list[bytes] = []
        if not pin.isascii() or not pin.isdigit():
            problems["pin"] = [PIN_DIGITS_MESSAGE]
        elif not PIN_MIN_LENGTH <= len(pin) <= PIN_MAX_LENGTH:
            problems["pin"] = [PIN_LENGTH_MESSAGE]
        else:
            raw = pin.encode()
            digests = [hmac.digest(key, raw, "sha256") for key in self.keys]
            digest, encrypted, last4, length = digests[0], self.encrypt(pin), pin[-4:], len(pin)
        del pin
        reseller_id, reseller_bad = None, False
        if at[RESELLER] is not None:
            name = _cell(values[at[RESELLER]])
            if name:
                reseller_id = self.resellers.get(name)
                if reseller_id is None:
                    problems["reseller"] = [f"No reseller is named {name!r}."]
                    reseller_bad = True
        expires_at = self._expiry(values[at[EXPIRY]])
        if expires_at is None:
            problems["expires_at"] = [EXPIRY_MESSAGE]
        staged = (
            line,
            series,
            number,
            amount,
            currency if "currency" not in problems else None,
            digest,
            encrypted,
            length,
            last4,
            reseller_id,
            reseller_bad,
            expires_at,
            json.dumps(problems) if problems else None,
            None,  # taken_by: filled once the chunk's PINs are looked up
        )
        return staged, digests


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
    reader = _Reader(header)
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


def _checked_event(check: ImportCheck | None, *, what: str, actor, ip_address) -> None:
    # Outside the import's transaction, which a preview or a refusal rolls back.
    if check is not None and check.checked:
        pins_checked_event(
            what=what,
            checked=check.checked,
            matched=check.matched,
            actor=actor,
            ip_address=ip_address,
        )


def _refuse_unless_allowed(actor) -> None:
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
    _refuse_unless_allowed(actor)
    check = None
    try:
        with transaction.atomic():
            header, rows = file_rows(data, file_format)
            check = import_check(
                header=header, rows=rows, actor=actor, total=total, progress=progress
            )
            transaction.set_rollback(True)  # the staged rows go with it, on every database
    finally:
        _checked_event(check, what=PinsChecked.IMPORT_PREVIEW, actor=actor, ip_address=ip_address)
    return check


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
    _refuse_unless_allowed(actor)
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
        _checked_event(
            holder[0] if holder else None,
            what=PinsChecked.IMPORT,
            actor=actor,
            ip_address=ip_address,
        )
    return count
