"""Report filters. They only validate; reports/tables/ turns clean values into figures."""

import datetime as dt
import re

from django import forms
from django.utils import timezone

from cards.models.formats import validate_currency, validate_series
from subscribers.models import Reseller
from wallets.models import BalanceTemplate, Channel

from .selectors.common import Granularity, periods

# A balance template counts money in a currency or other resources in a unit (MB, minutes).
_UNIT = re.compile(r"^[A-Z]{1,10}$")
# A chart and a table stay readable (and the query cheap) up to about this many periods.
MAX_PERIODS = {Granularity.DAY: 400, Granularity.WEEK: 270, Granularity.MONTH: 120}


def today() -> dt.date:
    return timezone.localdate()


def end_of_previous_month(day: dt.date) -> dt.date:
    return day.replace(day=1) - dt.timedelta(days=1)


def end_of_previous_quarter(day: dt.date) -> dt.date:
    first_month = 3 * ((day.month - 1) // 3) + 1
    return day.replace(month=first_month, day=1) - dt.timedelta(days=1)


class ReportForm(forms.Form):
    """Common filters. A reseller-scoped user's reseller list holds only their own reseller, so
    asking for another one (by editing the URL) is an invalid choice, not a wider report."""

    reseller = forms.ModelChoiceField(
        queryset=Reseller.objects.all(), required=False, empty_label="All resellers"
    )
    currency = forms.CharField(
        required=False,
        max_length=20,
        help_text="Three letters, e.g. USD; empty for every currency.",
    )
    series = forms.CharField(required=False, max_length=20)

    def __init__(self, *args, scope_reseller_id: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.scope_reseller_id = scope_reseller_id
        if scope_reseller_id is not None:
            field = self.fields["reseller"]
            field.queryset = Reseller.objects.filter(pk=scope_reseller_id)
            field.empty_label = None
            field.required = False

    @classmethod
    def defaults(cls, day: dt.date) -> dict[str, str]:
        return {}

    @classmethod
    def presets(cls, day: dt.date) -> list[tuple[str, dict[str, str]]]:
        return []

    def clean_currency(self) -> str:
        value = self.cleaned_data["currency"].strip().upper()
        if value:
            validate_currency(value)
        return value

    def clean_series(self) -> str:
        value = self.cleaned_data["series"].strip()
        if value:
            validate_series(value)
        return value

    @property
    def reseller_id(self) -> int | None:
        if self.scope_reseller_id is not None:
            return self.scope_reseller_id
        reseller = self.cleaned_data.get("reseller")
        return reseller.pk if reseller else None


GROUPINGS = [
    ("reseller", "Currency and reseller"),
    ("series", "Currency, reseller and series"),
    ("currency", "Currency"),
]


class LiabilityForm(ReportForm):
    as_of = forms.DateField(
        label="As of (end of day)", widget=forms.DateInput(attrs={"type": "date"})
    )
    group_by = forms.ChoiceField(choices=GROUPINGS)

    field_order = ["as_of", "group_by", "reseller", "currency", "series"]

    @classmethod
    def defaults(cls, day):
        return {"as_of": day.isoformat(), "group_by": "reseller"}

    def clean_as_of(self) -> dt.date:
        value = self.cleaned_data["as_of"]
        if value > today():
            raise forms.ValidationError(
                "Choose today or an earlier day: liability is known up to now only."
            )
        return value

    @classmethod
    def presets(cls, day):
        return [
            ("Today", {"as_of": day.isoformat()}),
            ("End of last month", {"as_of": end_of_previous_month(day).isoformat()}),
            ("End of last quarter", {"as_of": end_of_previous_quarter(day).isoformat()}),
            (
                "End of last year",
                {"as_of": (day.replace(month=1, day=1) - dt.timedelta(days=1)).isoformat()},
            ),
        ]


class ExpiringForm(ReportForm):
    group_by = forms.ChoiceField(choices=GROUPINGS)

    field_order = ["group_by", "reseller", "currency", "series"]

    @classmethod
    def defaults(cls, day):
        return {"group_by": "reseller"}


class PeriodForm(ReportForm):
    date_from = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(
        label="To (inclusive)", widget=forms.DateInput(attrs={"type": "date"})
    )
    granularity = forms.ChoiceField(label="Per", choices=Granularity.CHOICES)

    @classmethod
    def defaults(cls, day):
        return {
            "date_from": (day - dt.timedelta(days=29)).isoformat(),
            "date_to": day.isoformat(),
            "granularity": Granularity.DAY,
        }

    @classmethod
    def presets(cls, day):
        last_month_end = end_of_previous_month(day)
        year_ago = (day.replace(day=1) - dt.timedelta(days=335)).replace(day=1)
        return [
            ("Last 30 days", cls.defaults(day)),
            (
                "Last month",
                {
                    "date_from": last_month_end.replace(day=1).isoformat(),
                    "date_to": last_month_end.isoformat(),
                    "granularity": Granularity.DAY,
                },
            ),
            (
                "Last 12 weeks",
                {
                    "date_from": (day - dt.timedelta(weeks=12)).isoformat(),
                    "date_to": day.isoformat(),
                    "granularity": Granularity.WEEK,
                },
            ),
            (
                "Last 12 months",
                {
                    "date_from": year_ago.isoformat(),
                    "date_to": day.isoformat(),
                    "granularity": Granularity.MONTH,
                },
            ),
        ]

    def clean(self):
        cleaned = super().clean()
        date_from, date_to = cleaned.get("date_from"), cleaned.get("date_to")
        granularity = cleaned.get("granularity")
        if date_from and date_to:
            if date_from > date_to:
                raise forms.ValidationError("The period must start before it ends.")
            if granularity:
                limit = MAX_PERIODS[granularity]
                if len(periods(date_from, date_to, granularity)) > limit:
                    raise forms.ValidationError(
                        f"At most {limit} {granularity}s at a time: choose a shorter period "
                        f"or a longer step."
                    )
        return cleaned


class RedemptionForm(PeriodForm):
    breakdown = forms.ChoiceField(
        label="Break down by",
        choices=[
            ("channel", "Channel"),
            ("reseller", "Reseller"),
            ("series", "Series"),
            ("reseller_series", "Reseller and series"),
            ("reseller_channel", "Reseller and channel"),
            ("none", "Nothing"),
        ],
    )
    channel = forms.ChoiceField(required=False, choices=[("", "Every channel"), *Channel.choices])

    field_order = [
        "date_from",
        "date_to",
        "granularity",
        "breakdown",
        "reseller",
        "currency",
        "series",
        "channel",
    ]

    @classmethod
    def defaults(cls, day):
        return {**super().defaults(day), "breakdown": "channel"}


class BreakageForm(PeriodForm):
    breakdown = forms.ChoiceField(
        label="Break down by",
        choices=[
            ("reseller", "Reseller"),
            ("series", "Series"),
            ("reseller_series", "Reseller and series"),
            ("none", "Nothing"),
        ],
    )

    field_order = [
        "date_from",
        "date_to",
        "granularity",
        "breakdown",
        "reseller",
        "currency",
        "series",
    ]

    @classmethod
    def defaults(cls, day):
        return {**super().defaults(day), "breakdown": "reseller"}


class BalanceForm(PeriodForm):
    template = forms.ModelChoiceField(
        queryset=BalanceTemplate.objects.all(), required=False, empty_label="Every template"
    )
    series = None  # balances have no card series
    currency = forms.CharField(
        required=False, max_length=20, help_text="A currency or unit, e.g. USD or MB."
    )

    field_order = ["date_from", "date_to", "granularity", "reseller", "currency", "template"]

    def clean_currency(self) -> str:
        value = self.cleaned_data["currency"].strip().upper()
        if value and not _UNIT.match(value):
            raise forms.ValidationError("Currency or unit: 1 to 10 letters, e.g. USD or MB.")
        return value

    @classmethod
    def defaults(cls, day):
        year_ago = (day.replace(day=1) - dt.timedelta(days=335)).replace(day=1)
        return {
            "date_from": year_ago.isoformat(),
            "date_to": day.isoformat(),
            "granularity": Granularity.MONTH,
        }


class RollForwardForm(PeriodForm):
    breakdown = forms.ChoiceField(
        label="Break down by", choices=[("reseller", "Reseller"), ("none", "Nothing")]
    )

    field_order = [
        "date_from",
        "date_to",
        "granularity",
        "breakdown",
        "reseller",
        "currency",
        "series",
    ]

    @classmethod
    def defaults(cls, day):
        last_month_end = end_of_previous_month(day)
        return {
            "date_from": last_month_end.replace(day=1).isoformat(),
            "date_to": last_month_end.isoformat(),
            "granularity": Granularity.MONTH,
            "breakdown": "reseller",
        }
