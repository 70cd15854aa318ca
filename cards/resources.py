"""django-import-export resources: the admin's Export action and the card import.

Both use the streamed export's column names (cards.exports.COLUMNS), so a file exported here can
be imported by another Topup, and the Export action's CSV/XLSX/JSON has the same columns as the
streamed CSV. The Export action is for selections a person looks at; a whole series goes through
the streamed export (cards.exports), which is much faster and constant in memory.
"""

import io

import openpyxl
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from import_export import fields, resources
from import_export.formats.base_formats import XLSX
from openpyxl.styles.numbers import FORMAT_TEXT

from . import pins
from .events import PinsChecked, pins_checked_event
from .exceptions import ImportRefused
from .exports import COLUMNS, format_activated, format_time
from .models import TopUpCard
from .models.formats import PIN_MAX_LENGTH, PIN_MIN_LENGTH
from .services.importing.checking import ImportCheck, import_check
from .services.importing.writing import MEANWHILE_MESSAGE, import_write
from .services.scope import pin_import_refusal

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


class TopUpCardImportResource(resources.ModelResource):
    """Cards from another system's CSV: Serial Number, Amount, Currency, PIN Code, Reseller,
    Expiry Date (other columns, such as Status, are ignored: imported cards are new).

    The in-request path of the import for files up to IMPORT_SYNC_LIMIT rows: the rules are
    cards.services.importing's (the background job runs the same), this adapter only hands the
    file's rows to `import_check` and reports its findings per row. All-or-nothing: the admin
    offers no confirmation while any row fails, and import_data rolls back on any error.
    """

    class Meta:
        model = TopUpCard
        fields = ()
        import_id_fields = ()
        use_transactions = True
        skip_diff = True
        clean_model_instances = False
        # No savepoint per row (two statements a row): nothing is written row by row, the
        # cards go in together (after_import).
        use_bulk = True

    def __init__(self, *, user=None, ip_address: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.user = user
        self.ip_address = ip_address
        self.check: ImportCheck | None = None
        self.row_errors: dict[int, dict[str, list[str]]] = {}

    def import_data(self, dataset, dry_run=False, **kwargs):
        # All-or-nothing: any invalid row rolls the whole import back.
        kwargs["rollback_on_validation_errors"] = True
        kwargs["use_transactions"] = True
        try:
            return super().import_data(dataset, dry_run=dry_run, **kwargs)
        finally:
            # Outside the import's transaction, which a preview always rolls back.
            if self.check is not None and self.check.checked:
                pins_checked_event(
                    what=PinsChecked.IMPORT_PREVIEW if dry_run else PinsChecked.IMPORT,
                    checked=self.check.checked,
                    matched=self.check.matched,
                    actor=self.user,
                    ip_address=self.ip_address,
                )

    def before_import(self, dataset, **kwargs):
        """Check every row at once (the clear PINs go no further than the check), then mask the
        PIN column for the preview table."""
        refusal = pin_import_refusal(self.user)
        if refusal:
            raise ValidationError(refusal)
        try:
            self.check = import_check(
                header=list(dataset.headers or ()),
                rows=iter(dataset),
                actor=self.user,
                keep=len(dataset) + 1,
            )
        except ImportRefused as error:
            raise ValidationError(error.message) from None
        self.row_errors = dict(self.check.errors)
        masked = []
        for typed in dataset[PIN]:
            pin = pins.normalize_pin(str(typed or ""))
            ok = pin.isascii() and pin.isdigit() and PIN_MIN_LENGTH <= len(pin) <= PIN_MAX_LENGTH
            masked.append(f"{'•' * max(len(pin) - 4, 0)}{pin[-4:]}" if ok else "(invalid)")
        del dataset[PIN]
        dataset.append_col(masked, header=PIN)

    def get_or_init_instance(self, instance_loader, row):
        return TopUpCard(), True

    def import_instance(self, card, row, **kwargs):
        errors = self.row_errors.get(kwargs.get("row_number"))
        if errors:
            raise ValidationError(errors)

    def save_instance(self, instance, is_create, row, **kwargs):
        """The cards are written together by `after_import` (one INSERT … SELECT)."""

    def after_import(self, dataset, result, **kwargs):
        super().after_import(dataset, result, **kwargs)
        if kwargs.get("dry_run") or result.has_errors() or result.has_validation_errors():
            return
        try:
            with transaction.atomic():
                import_write(
                    check=self.check,
                    actor=self.user or kwargs.get("user"),
                    file_name=kwargs.get("file_name", ""),
                )
        except IntegrityError:
            raise ImportRefused(f"Nothing was imported: {MEANWHILE_MESSAGE}.") from None
