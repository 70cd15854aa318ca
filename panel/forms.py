"""The panel's forms (docs/panel.md): Redeem Voucher, and the admin's Add client. They only
validate; the services check the code, and the client's rules."""

import re
from decimal import Decimal

from django import forms
from django.contrib.auth import get_user_model, password_validation
from django.utils.translation import gettext_lazy as _

from subscribers.models import Reseller, Subscriber, Subscription
from wallets.models import AMOUNT_DIGITS, AMOUNT_PLACES, BalanceTemplate

from .services import ONBOARDING_KINDS, SUBSCRIBERS_GROUP, OpeningBalance


class CodeInput(forms.TextInput):
    """A text box that never writes the typed code back into the page."""

    def format_value(self, value):
        return None


class RedeemForm(forms.Form):
    code = forms.CharField(
        label=_("Voucher Code"),
        max_length=64,
        error_messages={
            "required": _("Enter the voucher code printed on your card."),
            "max_length": _(
                "This is not a valid voucher code: please check the code and try again."
            ),
        },
        widget=CodeInput(
            attrs={
                "autocomplete": "off",
                "autocapitalize": "off",
                "autocorrect": "off",
                "spellcheck": "false",
                "inputmode": "numeric",
                "placeholder": "1234 5678 9012",
                "autofocus": True,
            }
        ),
    )


# --- Add client (admin): only validates; panel.services.client_onboard decides ---------------

NO_RESELLER = "none"


def _model_field(model, name, **kwargs):
    """The model field's own form field: its length and validators, e.g. the username's."""
    return model._meta.get_field(name).formfield(**kwargs)


class ClientForm(forms.Form):
    sections = [
        ("Login to the client panel", ["username", "password1", "password2"]),
        ("Client", ["name", "reseller", "can_redeem"]),
        ("Subscription", ["external_id", "access_numbers"]),
    ]
    username = _model_field(get_user_model(), "username")
    password1 = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )
    password2 = forms.CharField(
        label="Password confirmation",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="The same password again, to check it.",
    )
    name = _model_field(Subscriber, "name", label="Client name")
    reseller = forms.ChoiceField(
        label="Reseller",
        help_text="The provider whose cards this client redeems (cards without a reseller too).",
    )
    external_id = _model_field(
        Subscription,
        "external_id",
        label="External id",
        help_text="The subscription's id in your other systems (REST: ExternalId+…).",
    )
    access_numbers = forms.CharField(
        label="Access numbers",
        max_length=1000,
        help_text="One or more phone numbers (MSISDN), separated by spaces or commas, "
        "e.g. 5555555555 +15551234567.",
    )
    can_redeem = forms.BooleanField(
        label="May redeem vouchers",
        required=False,
        initial=True,
        help_text=f"Member of the “{SUBSCRIBERS_GROUP}” group, which holds the permission to "
        "redeem cards in the client panel.",
    )

    def __init__(self, *args, scoped_reseller: Reseller | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["reseller"]
        if scoped_reseller is not None:
            # A reseller's staff adds their own clients only: the choice is made, not offered.
            field.choices = [(str(scoped_reseller.pk), scoped_reseller.name)]
            field.initial = str(scoped_reseller.pk)
            field.disabled = True
        else:
            field.choices = [
                ("", "— choose —"),
                (NO_RESELLER, "No reseller: redeems only cards issued without one"),
                *((str(pk), name) for pk, name in Reseller.objects.values_list("pk", "name")),
            ]
        self.scoped_reseller = scoped_reseller

    def clean_reseller(self) -> Reseller | None:
        if self.scoped_reseller is not None:
            return self.scoped_reseller
        value = self.cleaned_data["reseller"]
        if value == NO_RESELLER:
            return None
        reseller = Reseller.objects.filter(pk=value).first()
        if reseller is None:
            raise forms.ValidationError("This reseller no longer exists.")
        return reseller

    def clean_access_numbers(self) -> list[str]:
        return [n for n in re.split(r"[\s,;]+", self.cleaned_data["access_numbers"]) if n]

    def clean(self):
        data = super().clean()
        if data.get("password1") and data.get("password2") != data["password1"]:
            self.add_error("password2", "The two passwords differ.")
        return data


class BalanceRowForm(forms.Form):
    template = forms.ModelChoiceField(
        label="Balance template",
        queryset=BalanceTemplate.objects.filter(kind__in=ONBOARDING_KINDS),
    )
    resource_id = forms.IntegerField(label="Resource id", min_value=1, max_value=2**31 - 1)
    amount = forms.DecimalField(
        label="Opening amount",
        required=False,
        initial=Decimal("0"),
        min_value=Decimal("0"),
        max_digits=AMOUNT_DIGITS,
        decimal_places=AMOUNT_PLACES,
    )
    is_main = forms.BooleanField(label="Main", required=False)


class BaseBalanceRowFormSet(forms.BaseFormSet):
    def filled_forms(self) -> list[BalanceRowForm]:
        """The rows the operator filled in, in order: row N of the service is the Nth of these."""
        return [form for form in self.forms if form.has_changed() or not form.empty_permitted]

    def plans(self) -> list[OpeningBalance]:
        return [
            OpeningBalance(
                template=form.cleaned_data["template"],
                resource_id=form.cleaned_data["resource_id"],
                amount=form.cleaned_data.get("amount") or Decimal("0"),
                is_main=form.cleaned_data["is_main"],
            )
            for form in self.filled_forms()
        ]


BalanceRowFormSet = forms.formset_factory(
    BalanceRowForm,
    formset=BaseBalanceRowFormSet,
    extra=2,
    min_num=1,
    validate_min=True,
    max_num=10,
    validate_max=True,
)
