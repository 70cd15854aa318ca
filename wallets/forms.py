"""Admin forms: they only validate input; the services apply the rules and write."""

from decimal import Decimal

from django import forms

from .durations import parse_duration
from .models import AMOUNT_DIGITS, AMOUNT_PLACES, MAX_REASON_LENGTH
from .services.adjust import AdjustType

_DATETIME = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


class BalanceAdjustForm(forms.Form):
    adjust_type = forms.TypedChoiceField(
        label="Adjustment", choices=AdjustType.CHOICES, coerce=int, initial=AdjustType.CREDIT
    )
    amount = forms.DecimalField(
        min_value=Decimal(1).scaleb(-AMOUNT_PLACES),
        max_digits=AMOUNT_DIGITS,
        decimal_places=AMOUNT_PLACES,
    )
    reason = forms.CharField(max_length=MAX_REASON_LENGTH)


class BalanceValidityForm(forms.Form):
    start_time = forms.DateTimeField(
        required=False,
        widget=_DATETIME,
        help_text="New start (UTC): only earlier than the current start.",
    )
    end_time = forms.DateTimeField(required=False, widget=_DATETIME, help_text="New end (UTC).")
    end_relative = forms.CharField(
        required=False,
        max_length=40,
        label="Or extend the end by",
        help_text="An ISO 8601 duration from the current end, e.g. P4W or P1M.",
    )
    reason = forms.CharField(max_length=MAX_REASON_LENGTH)

    def clean_end_relative(self):
        text = self.cleaned_data["end_relative"].strip()
        if not text:
            return None
        relative = parse_duration(text)
        if relative is None:
            raise forms.ValidationError("Not an ISO 8601 duration such as P4W.")
        return relative

    def clean(self):
        data = super().clean()
        if data.get("end_time") and data.get("end_relative"):
            raise forms.ValidationError("Give either a new end time or a duration, not both.")
        if not (data.get("start_time") or data.get("end_time") or data.get("end_relative")):
            if not self.errors:
                raise forms.ValidationError("Give a new start time, end time or duration.")
        return data


class ReverseEntryForm(forms.Form):
    reason = forms.CharField(
        max_length=MAX_REASON_LENGTH, widget=forms.TextInput(attrs={"size": 60})
    )
