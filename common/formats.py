"""How amounts and counts read on every screen: thousands separators, the balance template's
decimal places, singular or plural."""

from decimal import Decimal, InvalidOperation


def format_amount(value, precision: int, *, signed: bool = False) -> str:
    """`value` with `precision` decimal places and thousands separators: 177.260000 at precision
    2 reads 177.26, 1234567.5 reads 1,234,567.50. Digits past the precision that are not zero
    are shown rather than rounded away, so an amount never reads as another one. "" when `value`
    is not a number."""
    try:
        amount = Decimal(value)
        places = Decimal(1).scaleb(-int(precision))
        rounded = amount.quantize(places)
    except (InvalidOperation, TypeError, ValueError):
        return ""
    if rounded != amount:
        rounded = amount.normalize()
    return format(rounded, "+,f" if signed else ",f")


def count_text(count: int, singular: str, plural: str | None = None) -> str:
    """ "1 card", "75,045 cards"."""
    noun = singular if count == 1 else (plural or f"{singular}s")
    return f"{count:,} {noun}"
