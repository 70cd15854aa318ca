"""Formatting for the client panel: amounts to the balance template's precision, amounts and
dates in the page's language; and which
message belongs to the Voucher Code field, so the field can be tied to it (docs/panel.md)."""

from django import template
from django.contrib.messages import constants
from django.utils.translation import get_language

from cards.exceptions import (
    CardAlreadyRedeemed,
    CardAmountMismatch,
    CardBlocked,
    CardCodeInvalid,
    CardCurrencyMismatch,
    CardExpired,
    CardNotFound,
    CardWrongReseller,
    RedemptionAddressUnknown,
    RedemptionLocked,
)
from common.formats import format_amount, format_date, format_datetime

register = template.Library()

__all__ = ["amount", "day", "format_amount", "moment", "signed_amount"]

# Refusals of the code that was typed (the view tags each with its code): shown under the
# Voucher Code field and tied to it. Other messages (a success, "try again", an account without
# a balance) are about the page and stay in its message list.
CODE_OUTCOMES = frozenset(
    error.code
    for error in (
        CardCodeInvalid,
        CardNotFound,
        CardAlreadyRedeemed,
        CardExpired,
        CardBlocked,
        CardWrongReseller,
        CardCurrencyMismatch,
        CardAmountMismatch,
        RedemptionLocked,
        RedemptionAddressUnknown,
    )
)


def _about_the_code(message) -> bool:
    return message.level == constants.ERROR and message.extra_tags in CODE_OUTCOMES


@register.filter
def amount(value, precision=2):
    return format_amount(value, precision, language=get_language())


@register.filter
def signed_amount(value, precision=2):
    return format_amount(value, precision, signed=True, language=get_language())


@register.filter
def day(value):
    return format_date(value) if value else ""


@register.filter
def moment(value):
    return format_datetime(value) if value else ""


@register.filter
def page_messages(messages) -> list:
    return [message for message in messages if not _about_the_code(message)]


@register.filter
def code_message(messages):
    """The refusal of the last code typed, if the page has one."""
    return next((message for message in messages if _about_the_code(message)), None)


@register.filter
def first_invalid(form) -> str:
    """The name of the form's first field with an error, which takes the focus."""
    return next((field.name for field in form if field.errors), "")


@register.simple_tag
def tied_input(field, *also: str, error=None, invalid=False, autofocus: bool | None = None):
    """The field's input tied to what the page says about it: `aria-describedby` names its error
    (`<id>_error`, when the field has errors or `error` is given), then the elements whose ids
    are in `also`, then its help text (`<id>_helptext`); `aria-invalid` with an error or when
    `invalid` says so (a refusal of the whole form, named in `also`). The template renders those
    elements with those ids. `autofocus=False` drops the widget's own, on a page that focuses
    something else (docs/panel.md, "Accessibility")."""
    has_error = bool(error or field.errors)
    ids = [f"{field.auto_id}_error" if has_error else "", *also]
    if field.help_text:
        ids.append(f"{field.auto_id}_helptext")
    attrs = {}
    if described_by := " ".join(i for i in ids if i):
        attrs["aria-describedby"] = described_by
    if has_error or invalid:
        attrs["aria-invalid"] = "true"
    if autofocus is not None:
        attrs["autofocus"] = autofocus
    return field.as_widget(attrs=attrs)
