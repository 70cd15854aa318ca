"""Forms of the printing and delivery screens (docs/printing.md). They only validate: the rules
are the services' (cards.services.printing, cards.services.delivery)."""

from django import forms
from django.core.exceptions import ValidationError

from .filters import parse_serial
from .models import CardBatch, Printer
from .print_layouts import LAYOUT_CHOICES


class SerialRangeMixin:
    """Two serials of one series (`first_serial`, `last_serial`) → series, first, last."""

    def clean_range(self, first: str, last: str) -> tuple[str, int, int] | None:
        try:
            first_series, first_number = parse_serial(first.strip())
            last_series, last_number = parse_serial(last.strip())
        except ValidationError as error:
            self.add_error("first_serial", error)
            return None
        if first_number is None or last_number is None:
            self.add_error("first_serial", "Give whole serial numbers, such as 4-000000001.")
            return None
        if first_series != last_series:
            self.add_error("last_serial", "Both serials must be of the same series.")
            return None
        if last_number < first_number:
            self.add_error("last_serial", "The last serial comes after the first.")
            return None
        return first_series, first_number, last_number


class PrinterForm(forms.ModelForm):
    class Meta:
        model = Printer
        fields = ["name", "contact", "public_key", "active"]
        widgets = {
            "public_key": forms.Textarea(attrs={"rows": 12, "cols": 80, "spellcheck": "false"})
        }


class PrintOrderForm(SerialRangeMixin, forms.Form):
    printer = forms.ModelChoiceField(
        queryset=Printer.objects.filter(active=True), label="Printing house"
    )
    layout = forms.ChoiceField(choices=LAYOUT_CHOICES, label="Layout")
    batch = forms.ModelChoiceField(
        queryset=CardBatch.objects.none(),
        required=False,
        label="Batch",
        help_text="Print a whole batch, or leave empty and give a serial range below.",
    )
    first_serial = forms.CharField(required=False, label="From serial", max_length=20)
    last_serial = forms.CharField(required=False, label="To serial", max_length=20)

    def __init__(self, *args, batches=None, **kwargs):
        super().__init__(*args, **kwargs)
        if batches is not None:
            self.fields["batch"].queryset = batches

    def clean(self):
        data = super().clean()
        data["series"] = data["first_number"] = data["last_number"] = None
        if data.get("batch") is None:
            if not (data.get("first_serial") and data.get("last_serial")):
                raise ValidationError("Choose a batch, or give the first and last serials.")
            found = self.clean_range(data["first_serial"], data["last_serial"])
            if found:
                data["series"], data["first_number"], data["last_number"] = found
        return data


class DeliveryForm(SerialRangeMixin, forms.Form):
    first_serial = forms.CharField(label="First serial in the box", max_length=20)
    last_serial = forms.CharField(label="Last serial in the box", max_length=20)
    reference = forms.CharField(
        label="Box", max_length=100, help_text="The box's label or the delivery note's number."
    )
    expected = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def clean(self):
        data = super().clean()
        if data.get("first_serial") and data.get("last_serial"):
            found = self.clean_range(data["first_serial"], data["last_serial"])
            if found:
                data["series"], data["first_number"], data["last_number"] = found
        return data
