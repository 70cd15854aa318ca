"""Formatting for the client panel: amounts to the balance template's precision."""

from django import template

from common.formats import format_amount

register = template.Library()

__all__ = ["amount", "format_amount", "signed_amount"]


@register.filter
def amount(value, precision=2):
    return format_amount(value, precision)


@register.filter
def signed_amount(value, precision=2):
    return format_amount(value, precision, signed=True)
