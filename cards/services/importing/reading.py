"""Reading an import file: its header and rows (CSV or XLSX), and the checks each row passes on
its own (serial, amount, currency, PIN, expiry, reseller name). A row's clear PIN goes no further
than RowReader.row, which replaces it by its digests and encrypted copy."""

import csv
import datetime as dt
import hmac
import io
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal, InvalidOperation
from typing import BinaryIO

from django.utils import timezone

from cards import pins
from cards.exceptions import ImportRefused
from cards.exports import COLUMNS
from cards.models.formats import (
    CURRENCY_FORMAT,
    CURRENCY_MESSAGE,
    PIN_MAX_LENGTH,
    PIN_MIN_LENGTH,
    SERIAL_NUMBER_DIGITS,
    SERIES_FORMAT,
)
from subscribers.models import Reseller

SERIAL, AMOUNT, CURRENCY, PIN, RESELLER, _STATUS, EXPIRY, _ACTIVATED, _CREATED = COLUMNS
REQUIRED_COLUMNS = (SERIAL, AMOUNT, CURRENCY, PIN, EXPIRY)
FIELDS = ("serial", "amount", "currency", "pin", "reseller", "expires_at")
"""The error keys of a row, in the order the preview lists them."""

_MEMO = 10_000  # distinct amounts or expiry texts remembered while reading a file

_SERIAL = re.compile(rf"({SERIES_FORMAT.pattern})-([0-9]{{1,{SERIAL_NUMBER_DIGITS}}})")
_CENT = Decimal("0.01")
SERIAL_MESSAGE = "Serial Number must look like 4-000000123."
AMOUNT_MESSAGE = "Amount must be a number greater than zero."
DECIMALS_MESSAGE = "Amount may have at most 2 decimal places."
EXPIRY_MESSAGE = "Expiry Date must be a date such as 2027-12-31 00:00:00+00:00."
PIN_DIGITS_MESSAGE = "PIN must be digits only."
PIN_LENGTH_MESSAGE = f"PIN must be {PIN_MIN_LENGTH} to {PIN_MAX_LENGTH} digits long."

RowErrors = dict[str, list[str]]


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


class RowReader:
    """Turns rows into staged tuples (cards.sql.importing.IMPORT_STAGE_COLUMNS) and per-row
    problems."""

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
