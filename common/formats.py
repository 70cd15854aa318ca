"""How amounts, dates and counts read on every screen: thousands separators, the balance
template's decimal places, the language's separators and date order, singular or plural."""

import datetime as dt
from decimal import Decimal, InvalidOperation

from django.utils import timezone, translation
from django.utils.formats import date_format, get_format

# English screens (the admin, the reports, the panel in English) read dates as ISO 8601, which
# no reader takes for another date; the panel's other languages use their own short format from
# Django's locale data (day first in Spanish and French: 15/01/2025 14:30).
ISO_DATE = "Y-m-d"
ISO_DATETIME = "Y-m-d H:i"


def format_amount(
    value, precision: int, *, signed: bool = False, language: str | None = None
) -> str:
    """`value` with `precision` decimal places and thousands separators: 177.260000 at precision
    2 reads 177.26, 1234567.5 reads 1,234,567.50. Digits past the precision that are not zero
    are shown rather than rounded away, so an amount never reads as another one. "" when `value`
    is not a number. With `language`, that language's separators (Django's locale data):
    1.234.567,50 in Spanish, 1 234 567,50 in French; the digits are the same Decimal's."""
    try:
        amount = Decimal(value)
        places = Decimal(1).scaleb(-int(precision))
        rounded = amount.quantize(places)
    except (InvalidOperation, TypeError, ValueError):
        return ""
    if rounded != amount:
        rounded = amount.normalize()
    text = format(rounded, "+,f" if signed else ",f")
    if language is None:
        return text
    separators = str.maketrans(
        {
            ",": get_format("THOUSAND_SEPARATOR", language),
            ".": get_format("DECIMAL_SEPARATOR", language),
        }
    )
    return text.translate(separators)


def format_money(
    value, precision: int, currency: str, *, signed: bool = False, language: str | None = None
) -> str:
    """The amount and its currency code, e.g. "25.00 USD", "25,00 USD"."""
    return f"{format_amount(value, precision, signed=signed, language=language)} {currency}"


def _is_english(language: str | None) -> bool:
    return (language or "en").split("-")[0] == "en"


def format_datetime(
    value: dt.datetime, *, language: str | None = None, english: str = ISO_DATETIME
) -> str:
    """A moment in the current time zone: 2025-01-15 14:30 in English (or the `english`
    format), 15/01/2025 14:30 in Spanish and French. The active language when `language` is
    None."""
    language = language or translation.get_language()
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    if _is_english(language):
        return date_format(local, english)
    with translation.override(language):
        return date_format(local, "SHORT_DATETIME_FORMAT")


def format_date(value: dt.date | dt.datetime, *, language: str | None = None) -> str:
    """A day: 2025-01-15 in English, 15/01/2025 in Spanish and French."""
    language = language or translation.get_language()
    if isinstance(value, dt.datetime) and timezone.is_aware(value):
        value = timezone.localtime(value)
    if _is_english(language):
        return date_format(value, ISO_DATE)
    with translation.override(language):
        return date_format(value, "SHORT_DATE_FORMAT")


def count_text(count: int, singular: str, plural: str | None = None) -> str:
    """ "1 card", "75,045 cards"."""
    noun = singular if count == 1 else (plural or f"{singular}s")
    return f"{count:,} {noun}"
