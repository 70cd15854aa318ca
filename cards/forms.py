"""Operator forms of the top-up cards section. They only parse and validate input: the
services (`cards/services/`) hold the rules and do the writes."""

import datetime as dt
import json

from django import forms
from django.utils import timezone

from subscribers.models import Reseller

from .currencies import card_currencies
from .models.formats import PIN_DEFAULT_LENGTH
from .selectors import series_proposal
from .services.mass_edit import EXPIRE_NOW, PAST_EXPIRY

DATETIME_FORMATS = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d"]


def default_expiry() -> dt.datetime:
    """One month ahead, at midnight (the JeraSoft form's default)."""
    today = timezone.localdate()
    month, year = (today.month % 12) + 1, today.year + (today.month // 12)
    day = min(today.day, 28)
    return timezone.make_aware(dt.datetime(year, month, day))


def resellers_for(scoped: Reseller | None):
    return Reseller.objects.filter(pk=scoped.pk) if scoped else Reseller.objects.order_by("name")


NO_RESELLER = "none"
NO_RESELLER_LABEL = "No reseller: redeemable by every subscriber"
CHOOSE_RESELLER = (
    "Choose the reseller that owns the cards, or “No reseller: redeemable by every subscriber”."
)


def reseller_choice(reseller: Reseller | None) -> str:
    """The Reseller select's value for a reseller, or for no reseller."""
    return NO_RESELLER if reseller is None else str(reseller.pk)


class CurrencyField(forms.ChoiceField):
    """A select of the card currencies whose other values reach the service, which says why it
    refuses them (cards.currencies.currency_refusal) rather than "Select a valid choice"."""

    def validate(self, value):
        forms.Field.validate(self, value)


class GenerateCardsForm(forms.Form):
    """Generate Top-Up Cards. Rules (ranges, PIN space, series, currency) are the service's;
    the form offers only what they accept and proposes a series (docs/cards.md)."""

    amount = forms.DecimalField(label="Amount", initial="0", max_digits=20, decimal_places=6)
    currency = CurrencyField(
        label="Currency",
        help_text="The currencies of the balance templates: a card redeems into a balance of its "
        "currency.",
    )
    quantity = forms.IntegerField(label="Quantity", initial=1)
    series = forms.CharField(
        label="Series",
        max_length=20,
        help_text="Proposed: the reseller's latest series, else the next free one. A series "
        "belongs to the reseller that first used it.",
    )
    pin_length = forms.IntegerField(
        label="PIN Length", initial=PIN_DEFAULT_LENGTH, help_text="digits (at least 5)"
    )
    reseller = forms.ChoiceField(
        label="Reseller", error_messages={"required": CHOOSE_RESELLER, "invalid_choice": ""}
    )
    expires_at = forms.DateTimeField(
        label="Expiry Date",
        input_formats=DATETIME_FORMATS,
        widget=forms.DateTimeInput(format="%Y-%m-%d %H:%M:%S"),
    )
    dormant = forms.BooleanField(
        label="Dormant until delivered",
        required=False,
        help_text="For printed boxes: the cards cannot be redeemed until you record the "
        "delivery of their box (Delivered boxes).",
    )

    def __init__(self, *args, scoped: Reseller | None = None, proposals=None, **kwargs):
        """`proposals`: the series to propose per Reseller select value (see
        cards.selectors.series_proposals); None proposes nothing."""
        super().__init__(*args, **kwargs)
        self.resellers = {str(r.pk): r for r in resellers_for(scoped)}
        reseller = self.fields["reseller"]
        reseller.error_messages["invalid_choice"] = CHOOSE_RESELLER
        if scoped is not None:
            reseller.choices = [(str(scoped.pk), scoped.name)]
            self.initial.setdefault("reseller", str(scoped.pk))
        else:
            reseller.choices = [
                ("", "— choose —"),
                (NO_RESELLER, NO_RESELLER_LABEL),
                *[(pk, r.name) for pk, r in self.resellers.items()],
            ]
        currencies = card_currencies()
        currency = self.fields["currency"]
        currency.choices = [("", "— choose —"), *[(code, code) for code in currencies]]
        if not currencies:
            currency.help_text = (
                "No balance template has an ISO 4217 currency yet: create one first."
            )
        elif len(currencies) == 1 or "USD" in currencies:
            self.initial.setdefault("currency", "USD" if "USD" in currencies else currencies[0])
        self.proposals = proposals or {}
        chosen = str(self["reseller"].value() or "")
        proposed = series_proposal(self.proposals, chosen) if self.proposals else ""
        if not self.is_bound:
            self.initial.setdefault("expires_at", default_expiry())
            if not self.initial.get("series"):
                self.initial["series"] = proposed
        # For static/cards/generate.js (an attribute, not an inline script: the site's CSP):
        # every proposal, and the one the field holds, replaced when the reseller changes
        # unless the operator typed another series.
        reseller.widget.attrs["data-series-proposals"] = json.dumps(self.proposals)
        self.fields["series"].widget.attrs["data-proposed"] = proposed

    def clean_reseller(self) -> Reseller | None:
        value = self.cleaned_data["reseller"]
        if value == NO_RESELLER:
            return None
        return self.resellers[value]


class CardChangeForm(forms.ModelForm):
    """One card's page: its edits go through the Mass Edit service, which refuses an expiry that
    is not in the future; said here beside the field."""

    LABELS = {"expires_at": "Expiry Date", "reseller": "Reseller", "blocked": "Blocked"}
    """JeraSoft's wording (docs/cards.md)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, label in self.LABELS.items():
            if name in self.fields:
                self.fields[name].label = label
        expires = self.fields.get("expires_at")
        if expires is not None and isinstance(expires.widget, forms.SplitDateTimeWidget):
            # The admin's date and time boxes, each with a label of its own (Django's template
            # labels neither: WCAG 1.3.1, 4.1.2).
            expires.widget.template_name = "cards/widgets/split_datetime.html"

    def clean_expires_at(self):
        value = self.cleaned_data.get("expires_at")
        if "expires_at" in self.changed_data and value is not None and value <= timezone.now():
            raise forms.ValidationError(PAST_EXPIRY)
        return value


MAX_ID = 2**63 - 1


class PrimaryKeysField(forms.Field):
    """Card ids from the per-row delete marks (checkboxes named `delete`)."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value):
        if not value:
            return []
        try:
            marked = sorted({int(item) for item in value})
        except (TypeError, ValueError):
            raise forms.ValidationError("The delete marks are not valid.") from None
        if marked and not (1 <= marked[0] and marked[-1] <= MAX_ID):
            # No card has such an id, and SQLite cannot even compare one past 64 bits.
            raise forms.ValidationError("The delete marks are not valid.")
        return marked


class MassEditForm(forms.Form):
    """Mass Edit: each field is preserved unless the operator says "set to"."""

    PRESERVE, SET, EXPIRE = "preserve", "set", "expire"
    BLOCK, UNBLOCK = "block", "unblock"

    expires_action = forms.ChoiceField(
        label="Expiration Date",
        choices=[(PRESERVE, "preserve"), (SET, "set to"), (EXPIRE, "expire now")],
        initial=PRESERVE,
    )
    expires_at = forms.DateTimeField(
        label="new expiration date",
        required=False,
        input_formats=DATETIME_FORMATS,
        widget=forms.DateTimeInput(
            format="%Y-%m-%d %H:%M:%S", attrs={"placeholder": "YYYY-MM-DD HH:MM"}
        ),
    )
    reseller_action = forms.ChoiceField(
        label="Company", choices=[(PRESERVE, "preserve"), (SET, "set to")], initial=PRESERVE
    )
    reseller = forms.ModelChoiceField(
        label="new company",
        queryset=Reseller.objects.none(),
        required=False,
        empty_label="— choose —",
    )
    block_action = forms.ChoiceField(
        label="Block",
        choices=[(PRESERVE, "preserve"), (BLOCK, "block"), (UNBLOCK, "unblock")],
        initial=PRESERVE,
    )
    delete = PrimaryKeysField(label="delete", required=False)
    confirm_expire = forms.BooleanField(
        label="Yes, expire these cards now: nobody can redeem them afterwards",
        required=False,
    )

    def __init__(self, *args, scoped: Reseller | None = None, deletable=None, **kwargs):
        """`deletable`: the primary keys that may carry a delete mark (the selection's cards
        that are not activated)."""
        super().__init__(*args, **kwargs)
        self.fields["reseller"].queryset = resellers_for(scoped)
        self._deletable = deletable

    def clean_delete(self):
        marked = self.cleaned_data.get("delete") or []
        if marked and self._deletable is not None:
            allowed = set(self._deletable(marked))
            refused = [pk for pk in marked if pk not in allowed]
            if refused:
                raise forms.ValidationError(
                    "Some cards marked for deletion are activated or not in the selection."
                )
        return marked

    def clean(self):
        data = super().clean()
        if data.get("expires_action") == self.SET and not data.get("expires_at"):
            self.add_error("expires_at", "Choose the new expiration date.")
        elif data.get("expires_action") == self.SET and data["expires_at"] <= timezone.now():
            # The service refuses it too (for the background job); said here beside the field.
            self.add_error("expires_at", PAST_EXPIRY)
        if data.get("reseller_action") == self.SET and not data.get("reseller"):
            self.add_error("reseller", "Choose the company to set.")
        nothing = (
            data.get("expires_action") == self.PRESERVE
            and data.get("reseller_action") == self.PRESERVE
            and data.get("block_action") == self.PRESERVE
            and not data.get("delete")
        )
        if nothing and not self.errors:
            raise forms.ValidationError(
                "Nothing to do: set a field, block or unblock, or mark cards for deletion."
            )
        return data

    @property
    def expires_now(self) -> bool:
        return getattr(self, "cleaned_data", {}).get("expires_action") == self.EXPIRE

    def confirm(self) -> bool:
        """On Confirm: "expire now" needs its own tick, beside the preview's warning."""
        if self.expires_now and not self.cleaned_data.get("confirm_expire"):
            self.add_error("confirm_expire", "Tick this box to expire the cards now, or go back.")
            return False
        return True

    def changes(self) -> dict:
        """Keyword arguments for `cards_mass_update` (only the fields set)."""
        data, changes = self.cleaned_data, {}
        if data["expires_action"] == self.SET:
            changes["expires_at"] = data["expires_at"]
        elif data["expires_action"] == self.EXPIRE:
            changes["expires_at"] = EXPIRE_NOW
        if data["reseller_action"] == self.SET:
            changes["reseller"] = data["reseller"]
        if data["block_action"] != self.PRESERVE:
            changes["blocked"] = data["block_action"] == self.BLOCK
        return changes
