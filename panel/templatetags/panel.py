"""Formatting for the client panel: amounts to the balance template's precision."""

from decimal import Decimal, InvalidOperation

from django import template

register = template.Library()


def format_amount(value, precision: int, *, signed: bool = False) -> str:
    """`value` with exactly `precision` decimal places and thousands separators."""
    try:
        amount = Decimal(value).quantize(Decimal(1).scaleb(-int(precision)))
    except (InvalidOperation, TypeError, ValueError):
        return ""
    return format(amount, "+,f" if signed else ",f")


@register.filter
def amount(value, precision=2):
    return format_amount(value, precision)


@register.filter
def signed_amount(value, precision=2):
    return format_amount(value, precision, signed=True)
