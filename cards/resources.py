"""django-import-export resources: the admin's Export action and the card import.

Both use the streamed export's column names (cards.exports.COLUMNS), so a file exported here can
be imported by another Topup, and the Export action's CSV/XLSX/JSON has the same columns as the
streamed CSV. The Export action is for selections a person looks at; a whole series goes through
the streamed export (cards.exports), which is much faster and constant in memory.
"""

import datetime as dt
import io
import re
from decimal import Decimal, InvalidOperation

import openpyxl
from django.core.exceptions import ValidationError
from django.utils import timezone
from import_export import fields, resources
from import_export.formats.base_formats import XLSX
from openpyxl.styles.numbers import FORMAT_TEXT

from subscribers.models import Reseller
from subscribers.selectors import staff_reseller

from . import pins
from .events import PinsChecked, cards_imported_event, pins_checked_event
from .exceptions import CardPermissionDenied
from .exports import COLUMNS, format_activated, format_time
from .models import (
    CURRENCY_FORMAT,
    CURRENCY_MESSAGE,
    PIN_MAX_LENGTH,
    PIN_MIN_LENGTH,
    SERIAL_NUMBER_DIGITS,
    SERIES_FORMAT,
    TopUpCard,
    format_serial,
)
from .services.scope import pin_import_refusal, series_claim

_SERIAL = re.compile(rf"({SERIES_FORMAT.pattern})-([0-9]{{1,{SERIAL_NUMBER_DIGITS}}})")
# Hidden columns added to the dataset when it is read: the clear PIN does not travel further.
_DIGEST, _ENCRYPTED, _LENGTH, _LAST4, _PIN_ERROR = (
    "_pin_digest",
    "_pin_encrypted",
    "_pin_length",
    "_pin_last4",
    "_pin_error",
)
_LOOKUP_CHUNK = 5_000
SERIAL, AMOUNT, CURRENCY, PIN, RESELLER, STATUS, EXPIRY, ACTIVATED, CREATED = COLUMNS


TEXT_COLUMNS = (SERIAL, PIN)
"""Columns a spreadsheet must keep as typed: `046556613456` read as a number loses its zero."""


class TextColumnsXLSX(XLSX):
    """The Export action's XLSX with the serial and PIN cells formatted as text ("@").

    The values are strings already, but a cell in the General format becomes a number as soon
    as someone edits or re-enters it (and the spreadsheet drops a PIN's leading zero); "@" keeps
    the cell text for good."""

    def export_data(self, dataset, **kwargs):
        book = openpyxl.load_workbook(io.BytesIO(super().export_data(dataset, **kwargs)))
        sheet = book.active
        headers = [cell.value for cell in sheet[1]]
        for name in TEXT_COLUMNS:
            if name not in headers:  # the operator may leave a column out
                continue
            for (cell,) in sheet.iter_rows(
                min_col=headers.index(name) + 1, max_col=headers.index(name) + 1
            ):
                cell.number_format = FORMAT_TEXT
        stream = io.BytesIO()
        book.save(stream)
        return stream.getvalue()


class TopUpCardExportResource(resources.ModelResource):
    """The Export action (CSV, XLSX, JSON): PINs only for holders of `cards.view_pin`."""

    serial = fields.Field(column_name=SERIAL)
    amount = fields.Field(column_name=AMOUNT)
    currency = fields.Field(attribute="currency", column_name=CURRENCY)
    pin = fields.Field(column_name=PIN)
    reseller = fields.Field(column_name=RESELLER)
    status = fields.Field(column_name=STATUS)
    expires_at = fields.Field(column_name=EXPIRY)
    activated = fields.Field(column_name=ACTIVATED)
    created_at = fields.Field(column_name=CREATED)

    class Meta:
        model = TopUpCard
        fields = export_order = (
            "serial",
            "amount",
            "currency",
            "pin",
            "reseller",
            "status",
            "expires_at",
            "activated",
            "created_at",
        )

    def __init__(self, *, user=None, **kwargs):
        super().__init__(**kwargs)
        self.with_pins = bool(user and user.has_perm("cards.view_pin"))

    def filter_export(self, queryset, **kwargs):
        return queryset.select_related("reseller", "activated_by").order_by("series", "number")

    def dehydrate_serial(self, card):
        return card.serial

    def dehydrate_amount(self, card):
        return f"{card.amount:.2f}"

    def dehydrate_pin(self, card):
        return pins.decrypt_pin(card.pin_encrypted) if self.with_pins else card.masked_pin

    def dehydrate_reseller(self, card):
        return card.reseller.name if card.reseller else ""

    def dehydrate_status(self, card):
        return str(card.status)

    def dehydrate_expires_at(self, card):
        return format_time(card.expires_at)

    def dehydrate_activated(self, card):
        return format_activated(
            card.activated_at, card.activated_by.name if card.activated_by else ""
        )

    def dehydrate_created_at(self, card):
        return format_time(card.created_at)


def parse_time(text: str) -> dt.datetime:
    """An ISO date or date-time; a naive one is taken as UTC."""
    text = text.strip()
    if text.endswith(" UTC"):
        text = text[:-4] + "+00:00"
    value = dt.datetime.fromisoformat(text)
    return value if timezone.is_aware(value) else value.replace(tzinfo=dt.UTC)


class TopUpCardImportResource(resources.ModelResource):
    """Cards from another system's CSV: Serial Number, Amount, Currency, PIN Code, Reseller,
    Expiry Date (other columns, such as Status, are ignored: imported cards are new).

    Every row is checked and reported with its reason; the import is all-or-nothing (the admin
    offers no confirmation while any row fails, and import_data rolls back on any error).
    """

    class Meta:
        model = TopUpCard
        fields = ()
        import_id_fields = ()
        use_transactions = True
        skip_diff = True
        clean_model_instances = False

    def __init__(self, *, user=None, ip_address: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.user = user
        self.ip_address = ip_address
        self.scope = staff_reseller(user) if user is not None else None
        self.seen_serials: set[tuple[str, int]] = set()
        self.seen_digests: set[bytes] = set()
        self.taken: dict[bytes, str] = {}
        """Digest (current key) of each file PIN that a card has → that card's serial."""
        self.series_refusals: dict[tuple[str, int | None], str | None] = {}
        self.pins_checked = 0
        self.imported = 0

    def import_data(self, dataset, dry_run=False, **kwargs):
        # All-or-nothing: any invalid row rolls the whole import back.
        kwargs["rollback_on_validation_errors"] = True
        kwargs["use_transactions"] = True
        try:
            return super().import_data(dataset, dry_run=dry_run, **kwargs)
        finally:
            # Outside the import's transaction, which a preview always rolls back.
            if self.pins_checked:
                pins_checked_event(
                    what=PinsChecked.IMPORT_PREVIEW if dry_run else PinsChecked.IMPORT,
                    checked=self.pins_checked,
                    matched=len(self.taken),
                    actor=self.user,
                    ip_address=self.ip_address,
                )

    # --- reading the file ---------------------------------------------------------------------

    def before_import(self, dataset, **kwargs):
        """Replace each clear PIN by its digest and encrypted copy as soon as the file is read,
        and look every PIN up at once (under every digest key)."""
        refusal = pin_import_refusal(self.user)
        if refusal:
            raise ValidationError(refusal)
        missing = [c for c in (SERIAL, AMOUNT, CURRENCY, PIN, EXPIRY) if c not in dataset.headers]
        if missing:
            raise ValidationError(f"The file has no column {', '.join(missing)}.")
        values = {name: [] for name in (_DIGEST, _ENCRYPTED, _LENGTH, _LAST4, _PIN_ERROR)}
        masked = []
        every_key: dict[bytes, bytes] = {}  # digest under any key -> digest under the current one
        for typed in dataset[PIN]:
            pin = pins.normalize_pin(str(typed or ""))
            error = ""
            if not pin.isascii() or not pin.isdigit():
                error = "PIN must be digits only."
            elif not PIN_MIN_LENGTH <= len(pin) <= PIN_MAX_LENGTH:
                error = f"PIN must be {PIN_MIN_LENGTH} to {PIN_MAX_LENGTH} digits long."
            ok = not error
            if ok:
                digests = pins.pin_digests(pin)
                every_key.update((digest, digests[0]) for digest in digests)
            values[_DIGEST].append(digests[0].hex() if ok else "")
            values[_ENCRYPTED].append(pins.encrypt_pin(pin).hex() if ok else "")
            values[_LENGTH].append(len(pin) if ok else 0)
            values[_LAST4].append(pin[-4:] if ok else "")
            values[_PIN_ERROR].append(error)
            masked.append(f"{'•' * max(len(pin) - 4, 0)}{pin[-4:]}" if ok else "(invalid)")
        del dataset[PIN]
        dataset.append_col(masked, header=PIN)
        for name, column in values.items():
            dataset.append_col(column, header=name)
        self.pins_checked = len({every_key[d] for d in every_key})
        found = list(every_key)
        for start in range(0, len(found), _LOOKUP_CHUNK):
            for digest, series, number in TopUpCard.objects.filter(
                pin_digest__in=found[start : start + _LOOKUP_CHUNK]
            ).values_list("pin_digest", "series", "number"):
                self.taken[every_key[bytes(digest)]] = format_serial(series, number)

    def get_or_init_instance(self, instance_loader, row):
        return TopUpCard(), True

    def import_instance(self, card, row, **kwargs):
        errors: dict[str, str] = {}
        serial = str(row.get(SERIAL) or "").strip()
        match = _SERIAL.fullmatch(serial)
        if not match or int(match.group(2)) == 0:
            errors["serial"] = "Serial Number must look like 4-000000123."
        else:
            card.series, card.number = match.group(1), int(match.group(2))
            key = (card.series, card.number)
            if key in self.seen_serials:
                errors["serial"] = f"Serial Number {serial} appears twice in the file."
            elif TopUpCard.objects.filter(series=card.series, number=card.number).exists():
                errors["serial"] = f"Serial Number {serial} exists already."
            self.seen_serials.add(key)
        try:
            card.amount = Decimal(str(row.get(AMOUNT) or "").strip())
            if not card.amount.is_finite() or card.amount <= 0:
                raise InvalidOperation
            if card.amount != card.amount.quantize(Decimal("0.01")):
                errors["amount"] = "Amount may have at most 2 decimal places."
        except InvalidOperation:
            errors["amount"] = "Amount must be a number greater than zero."
        card.currency = str(row.get(CURRENCY) or "").strip().upper()
        if not CURRENCY_FORMAT.fullmatch(card.currency):
            errors["currency"] = CURRENCY_MESSAGE
        if row[_PIN_ERROR]:
            errors["pin"] = row[_PIN_ERROR]
        else:
            digest = bytes.fromhex(row[_DIGEST])
            card.pin_digest = digest
            card.pin_encrypted = bytes.fromhex(row[_ENCRYPTED])
            card.pin_length = int(row[_LENGTH])
            card.pin_last4 = row[_LAST4]
            if digest in self.seen_digests:
                errors["pin"] = "This PIN appears twice in the file."
            elif digest in self.taken:
                # Only who may see every PIN imports (pin_import_refusal): naming the card
                # tells them nothing they could not look up.
                errors["pin"] = f"Card {self.taken[digest]} has this PIN already."
            self.seen_digests.add(digest)
        reseller_name = str(row.get(RESELLER) or "").strip()
        card.reseller = None
        if reseller_name:
            card.reseller = Reseller.objects.filter(name=reseller_name).first()
            if card.reseller is None:
                errors["reseller"] = f"No reseller is named {reseller_name!r}."
        if self.scope is not None and card.reseller != self.scope:
            errors["reseller"] = f"You may import only cards of {self.scope.name}."
        elif "serial" not in errors and "reseller" not in errors:
            refusal = self._series_refusal(card.series, card.reseller)
            if refusal:
                errors["serial"] = refusal
        try:
            card.expires_at = parse_time(str(row.get(EXPIRY) or ""))
        except ValueError:
            errors["expires_at"] = "Expiry Date must be a date such as 2027-12-31 00:00:00+00:00."
        if errors:
            raise ValidationError(errors)

    def _series_refusal(self, series: str, reseller) -> str | None:
        """The series rule (cards.services.scope.series_claim), once per series and reseller.

        Claimed within the import's transaction: a preview's claim is rolled back with it, and
        the first row of a new series claims it for the rows after it."""
        key = (series, reseller.pk if reseller else None)
        if key not in self.series_refusals:
            try:
                series_claim(actor=self.user, series=series, reseller=reseller)
                self.series_refusals[key] = None
            except CardPermissionDenied as error:
                self.series_refusals[key] = error.message
        return self.series_refusals[key]

    def save_instance(self, instance, is_create, row, **kwargs):
        super().save_instance(instance, is_create, row, **kwargs)
        if not kwargs.get("dry_run"):
            self.imported += 1

    def after_import(self, dataset, result, **kwargs):
        super().after_import(dataset, result, **kwargs)
        if kwargs.get("dry_run") or result.has_errors() or result.has_validation_errors():
            return
        cards_imported_event(
            first_serial=str(dataset[SERIAL][0]) if len(dataset) else "",
            rows=self.imported,
            file_name=kwargs.get("file_name", ""),
            actor=self.user or kwargs.get("user"),
        )
