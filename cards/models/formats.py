"""The formats of a card's values (docs/cards.md): serial, series, currency code and PIN length.
The one definition of each, for every check of them: the generation service, the import, the
Advanced Search, the database constraints, the reports. Match with `fullmatch` (a `$` would let
a trailing newline through)."""

import re

from django.core.exceptions import ValidationError
from django.db.models import CharField, F, Value
from django.db.models.functions import Cast, Concat, LPad

SERIAL_NUMBER_DIGITS = 9
MAX_CARD_NUMBER = 10**SERIAL_NUMBER_DIGITS - 1
PIN_MIN_LENGTH = 5
PIN_MAX_LENGTH = 20
PIN_DEFAULT_LENGTH = 12

SERIES_MAX_DIGITS = 6
SERIES_FORMAT = re.compile(rf"[0-9]{{1,{SERIES_MAX_DIGITS}}}")
SERIES_MESSAGE = f"Series must be 1 to {SERIES_MAX_DIGITS} digits."
CURRENCY_FORMAT = re.compile(r"[A-Z]{3}")
CURRENCY_MESSAGE = "Currency must be a three-letter code such as USD."


def validate_series(value: str) -> None:
    if not SERIES_FORMAT.fullmatch(value):
        raise ValidationError(SERIES_MESSAGE, code="series")


def validate_currency(value: str) -> None:
    """Three capital letters: callers upper-case what people type before checking it."""
    if not CURRENCY_FORMAT.fullmatch(value):
        raise ValidationError(CURRENCY_MESSAGE, code="currency")


def format_serial(series: str, number: int) -> str:
    return f"{series}-{number:0{SERIAL_NUMBER_DIGITS}d}"


def serial_expression() -> Concat:
    """`format_serial` in SQL, for statements that write or export serials without loading cards."""
    return Concat(
        F("series"),
        Value("-"),
        LPad(Cast("number", CharField()), SERIAL_NUMBER_DIGITS, Value("0")),
        output_field=CharField(),
    )
