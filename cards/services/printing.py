"""Printing houses and print orders (docs/printing.md): register a printer's public key, order
the print file of a serial range, produce it encrypted (the worker), record each download.

No person sees a clear PIN here: the worker decrypts each PIN in memory only to hand it to gpg,
and what is stored and downloaded is the ciphertext only the printing house can open.
"""

import hashlib

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from cards import openpgp, pins
from cards.events import print_downloaded_event, print_ordered_event
from cards.exceptions import PrintError
from cards.models import CardBatch, Printer, PrintOrder, PrintOrderChunk
from cards.models.formats import MAX_CARD_NUMBER, SERIES_FORMAT, SERIES_MESSAGE, format_serial
from cards.models.jobs import CardJobStatus
from cards.print_layouts import LAYOUTS, PrintCard, print_lines
from cards.selectors import cards_visible_to
from cards.services.scope import series_owner
from common.formats import count_text
from subscribers.selectors import staff_reseller

CHUNK_BYTES = 1 << 20
"""The stored slices of an encrypted file: a download holds one in memory at a time."""


@transaction.atomic
def printer_register(*, name: str, contact: str = "", public_key: str, actor) -> Printer:
    """A printing house whose key `openpgp.key_check` accepts (PrintError otherwise)."""
    if staff_reseller(actor) is not None:
        raise PrintError("Printing houses are registered by the platform's operators.")
    info = openpgp.key_check(public_key)
    if Printer.objects.filter(fingerprint=info.fingerprint).exists():
        raise PrintError(
            "A printing house with this key is registered already.", field="public_key"
        )
    return Printer.objects.create(
        name=name,
        contact=contact,
        public_key=public_key.strip() + "\n",
        fingerprint=info.fingerprint,
        key_description=info.description,
        key_expires_at=info.expires_at,
        created_by=actor,
    )


def printable_cards(*, series: str, first_number: int, last_number: int, actor):
    """The cards of the range that can still be sold, as `actor` sees them: not redeemed,
    blocked or expired (dormant or not). An activated card is history and an expired or blocked
    one must not reach a shop."""
    return cards_visible_to(actor).filter(
        Q(series=series, number__gte=first_number, number__lte=last_number),
        activated_at__isnull=True,
        blocked=False,
        expires_at__gt=timezone.now(),
    )


def _range_of(*, batch, series, first_number, last_number) -> tuple[str, int, int]:
    if batch is not None:
        return batch.series, batch.first_number, batch.first_number + batch.quantity - 1
    if not isinstance(series, str) or not SERIES_FORMAT.fullmatch(series):
        raise PrintError(SERIES_MESSAGE, field="series")
    if not (
        isinstance(first_number, int)
        and isinstance(last_number, int)
        and 1 <= first_number <= last_number <= MAX_CARD_NUMBER
    ):
        raise PrintError("Give a range of serial numbers, the first one first.", field="first")
    return series, first_number, last_number


def _usable_key(printer: Printer) -> None:
    """The printer may receive files now: active, and its key still accepted (it may have
    expired since it was registered)."""
    if not printer.active:
        raise PrintError(f"{printer.name} is not active.", field="printer")
    try:
        info = openpgp.key_check(printer.public_key)
    except PrintError as error:
        raise PrintError(f"{printer.name}'s key: {error.message}", field="printer") from None
    if info.fingerprint != printer.fingerprint:  # the stored key was altered
        raise PrintError(f"{printer.name}'s key is not the one registered.", field="printer")


@transaction.atomic
def print_order_create(
    *,
    printer: Printer,
    layout: str,
    batch: CardBatch | None = None,
    series: str | None = None,
    first_number: int | None = None,
    last_number: int | None = None,
    actor,
    ip_address: str | None = None,
) -> PrintOrder:
    """Order the print file of `batch` (or of `series` `first_number`…`last_number`); the
    worker produces it (cards.jobs.run_print_order). Audited as `print_ordered`."""
    if layout not in LAYOUTS:
        raise PrintError("Choose one of the layouts offered.", field="layout")
    series, first, last = _range_of(
        batch=batch, series=series, first_number=first_number, last_number=last_number
    )
    owner = series_owner(series)
    scoped = staff_reseller(actor)
    if scoped is not None and (owner is None or owner.reseller_id != scoped.pk):
        raise PrintError(f"Series {series} is not one of your company's.", field="series")
    if batch is not None and scoped is not None and batch.reseller_id != scoped.pk:
        raise PrintError("This batch is not one of your company's.", field="batch")
    _usable_key(printer)
    count = printable_cards(series=series, first_number=first, last_number=last, actor=actor)
    count = count.count()
    if count == 0:
        raise PrintError(
            "No card of this range can be printed (none exists, or all are redeemed, blocked "
            "or expired).",
            field="first" if batch is None else "batch",
        )
    if count > settings.PRINT_ORDER_MAX_CARDS:
        raise PrintError(
            f"At most {count_text(settings.PRINT_ORDER_MAX_CARDS, 'card')} per print order.",
            field="first",
        )
    order = PrintOrder.objects.create(
        printer=printer,
        key_fingerprint=printer.fingerprint,
        layout=layout,
        batch=batch,
        series=series,
        first_number=first,
        last_number=last,
        reseller_id=owner.reseller_id if owner is not None else None,
        expected=count,
        requested_by=actor,
    )
    print_ordered_event(order=order, actor=actor, ip_address=ip_address)
    return order


def _cards_in_clear(cards, counter: list[int]):
    """The print file's cards, each PIN decrypted in memory on its way to gpg."""
    decrypt = pins.decryptor()
    rows = cards.order_by("number").values_list(
        "series", "number", "pin_encrypted", "amount", "currency", "expires_at", "reseller__name"
    )
    for series, number, blob, amount, currency, expires_at, reseller in rows.iterator(2000):
        counter[0] += 1
        yield PrintCard(
            serial=format_serial(series, number),
            pin=decrypt(bytes(blob)),
            amount=amount,
            currency=currency,
            expires_at=expires_at,
            reseller=reseller or "",
        )


@transaction.atomic
def print_order_produce(*, order: PrintOrder) -> PrintOrder:
    """The worker's part: encrypt the order's cards to the printer's key and store only the
    ciphertext, in slices, with the order's figures; all in one transaction (a crash leaves no
    slice). The cards are those printable now, as the orderer sees them."""
    printer = order.printer
    actor = order.requested_by
    if actor is None or not actor.is_active or not actor.has_perm("cards.add_printorder"):
        raise PrintError("The operator who ordered it is no longer allowed to.")
    _usable_key(printer)
    if printer.fingerprint != order.key_fingerprint:
        raise PrintError("The printer's key changed since the order: order again.")
    cards = printable_cards(
        series=order.series,
        first_number=order.first_number,
        last_number=order.last_number,
        actor=actor,
    )
    counter = [0]
    clear = print_lines(LAYOUTS[order.layout], _cards_in_clear(cards, counter))
    digest = hashlib.sha256()
    size = 0
    with openpgp.encrypted(
        public_key=printer.public_key, fingerprint=order.key_fingerprint, clear=clear
    ) as cipher:
        position = 0
        while block := cipher.read(CHUNK_BYTES):
            PrintOrderChunk.objects.create(order=order, position=position, data=block)
            digest.update(block)
            size += len(block)
            position += 1
    order.rows = counter[0]
    order.size = size
    order.sha256 = digest.hexdigest()
    order.status = CardJobStatus.SUCCEEDED
    order.finished_at = timezone.now()
    order.save(update_fields=["rows", "size", "sha256", "status", "finished_at"])
    return order


@transaction.atomic
def print_order_download(*, order: PrintOrder, actor, ip_address: str | None):
    """Record the download of `order`'s encrypted file by `actor`; its slices, in order, for the
    response to stream. The caller checked `cards.download_printorder` and the order's scope."""
    if order.status != CardJobStatus.SUCCEEDED:
        raise PrintError("This print order has no file yet.")
    print_downloaded_event(order=order, actor=actor, ip_address=ip_address)
    return PrintOrderChunk.objects.filter(order=order).order_by("position")


def print_order_chunks(chunks):
    """The encrypted file's bytes, one stored slice at a time."""
    for pk in chunks.values_list("pk", flat=True):
        yield bytes(PrintOrderChunk.objects.values_list("data", flat=True).get(pk=pk))
