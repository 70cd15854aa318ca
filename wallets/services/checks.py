"""Input rules several services share: an amount's precision and size, a reason's text."""

import unicodedata
from decimal import Decimal

from ..exceptions import BadData
from ..models import AMOUNT_DIGITS, AMOUNT_PLACES, MAX_REASON_LENGTH, Balance

# A balance amount has AMOUNT_DIGITS digits, AMOUNT_PLACES of them decimals.
AMOUNT_LIMIT = Decimal(10) ** (AMOUNT_DIGITS - AMOUNT_PLACES)


def decimal_places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def check_precision(balance: Balance, amount: Decimal) -> None:
    """T6: an amount may not have more decimal places than the balance template allows."""
    if not amount.is_finite():
        raise BadData("Amount must be a number.", rule="T6")
    if decimal_places(amount) > balance.template.precision:
        raise BadData(
            f"Amount has more than {balance.template.precision} decimal places.", rule="T6"
        )


def check_reason_text(reason: str, *, required: str = "") -> None:
    """A reason is one line of text for the audit trail: bounded, and without control
    characters (PostgreSQL cannot store NUL; a JSON body can carry it, and lone surrogates).

    `required`: the refusal when the reason is blank, for the changes that must give one.
    """
    if required and not (reason or "").strip():
        raise BadData(required)
    if len(reason) > MAX_REASON_LENGTH:
        raise BadData(f"The reason may have at most {MAX_REASON_LENGTH} characters.")
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in reason):
        raise BadData("The reason may not contain control characters.")
