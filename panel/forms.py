"""The Redeem Voucher form (docs/panel.md): it only validates; the service checks the code."""

from django import forms


class CodeInput(forms.TextInput):
    """A text box that never writes the typed code back into the page."""

    def format_value(self, value):
        return None


class RedeemForm(forms.Form):
    code = forms.CharField(
        label="Voucher Code",
        max_length=64,
        error_messages={
            "required": "Enter the voucher code printed on your card.",
            "max_length": "This is not a valid voucher code: please check the code and try again.",
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
