"""The audit events of cards (docs/cards.md): the only code that builds a CardEvent's `changes`.

One function per kind of event writes it. A class per kind names the keys of its `changes`, for
the code that reads them (cards.lockout, the finance reports): the JSON is a record, so a key or
the format of its value never changes once events carry it.

Mass Edit and Delete all write one event per card in one INSERT … SELECT
(cards.sql.selection); their payloads are database expressions over each card's columns, made
here too (`*_events`). So is the payload the REST top-up statement writes in SQL
(`redeemed_jsonb`).
"""

from dataclasses import dataclass
from typing import Final

from django.db.models import BigIntegerField, CharField, F, Value
from django.db.models.functions import Cast, JSONObject
from psycopg import sql

from wallets.models import Channel

from .exceptions import GUESS_ERRORS, RedemptionAddressUnknown, RedemptionLocked
from .models import CardBatch, CardEvent, TopUpCard
from .models.events import CardEventKind


class _CardFields:
    """Keys named after the card's field whose value they record."""

    SERIES: Final = "series"
    AMOUNT: Final = "amount"
    CURRENCY: Final = "currency"
    RESELLER: Final = "reseller"
    EXPIRES_AT: Final = "expires_at"


class Generated(_CardFields):
    """`generated`: the batch's parameters; RESELLER is the reseller's name, or null."""

    FIRST_SERIAL: Final = "first_serial"
    LAST_SERIAL: Final = "last_serial"
    QUANTITY: Final = "quantity"
    PIN_LENGTH: Final = "pin_length"
    DORMANT: Final = "dormant"
    """True when the batch was generated dormant (absent from events before dormant cards)."""


class Edited:
    """`edited`, `blocked` and `unblocked` (Mass Edit): one field of one card, old and new."""

    FIELD: Final = "field"
    OLD: Final = "old"
    NEW: Final = "new"
    NEW_NAME: Final = "new_name"
    """Only when FIELD is RESELLER (whose OLD and NEW are reseller ids): the new one's name."""
    # The values of FIELD. Blocked / unblocked events say BLOCKED; their kind is the new flag.
    EXPIRES_AT: Final = "expires_at"
    RESELLER: Final = "reseller"
    BLOCKED: Final = "blocked"


class Deleted(_CardFields):
    """`deleted` (Delete all): the card as it was when it went, for the reports' past days.

    RESELLER is the reseller's id, or null. The datetimes are as the database writes them into
    JSON: ISO 8601 with a "T" and an offset on PostgreSQL (jsonb), the column's own
    "YYYY-MM-DD HH:MM:SS[.ffffff]" UTC text on SQLite; BLOCKED is true/false on PostgreSQL, 1/0
    on SQLite.
    """

    CREATED_AT: Final = "created_at"
    BLOCKED: Final = "blocked"
    DORMANT: Final = "dormant"
    """Whether the card was still undelivered (absent from events before dormant cards: false);
    true/false or 1/0 as BLOCKED."""


class Redeemed:
    BALANCE: Final = "balance"
    """The balance's id."""
    AMOUNT: Final = "amount"
    CURRENCY: Final = "currency"


class RedeemFailed:
    REASON: Final = "reason"
    """The `code` of the CardError that refused the attempt."""
    LOCKED: Final = RedemptionLocked.code
    """The REASON of an attempt refused by a lock (not counted towards a lock)."""
    NO_ADDRESS: Final = RedemptionAddressUnknown.code
    """The REASON of an attempt refused because its client address could not be read."""
    GUESSES: Final = tuple(error.code for error in GUESS_ERRORS)
    """The REASONs a lockout counts: no card matches the code (cards.lockout)."""


class Reversed:
    REASON: Final = "reason"
    AMOUNT: Final = "amount"
    CURRENCY: Final = "currency"
    REVERSAL_ENTRY: Final = "reversal_entry"
    """The compensating ledger entry's id."""
    BLOCKED: Final = "blocked"
    """[old, new]: a reversal blocks the card."""


class Exported:
    """`exported`: the streamed CSV (FILTER, ROWS, WITH_PINS, COMPLETE) or the admin's Export
    action (WHAT, FORMAT, ROWS, WITH_PINS)."""

    FILTER: Final = "filter"
    ROWS: Final = "rows"
    WITH_PINS: Final = "with_pins"
    COMPLETE: Final = "complete"
    """False when the client went away before the end of the stream."""
    WHAT: Final = "what"
    FORMAT: Final = "format"
    EXPORT_ACTION: Final = "export action"
    """The value of WHAT."""


class Imported:
    ROWS: Final = "rows"
    FILE: Final = "file"


class PinsChecked:
    """`pins_checked`: typed or uploaded PINs looked up outside redemption (docs/reliability.md,
    "No PIN oracle"). Each event counts once towards the global failure budget."""

    WHAT: Final = "what"
    CHECKED: Final = "checked"
    """How many PINs were looked up."""
    MATCHED: Final = "matched"
    """How many of them a card has."""
    # The values of WHAT.
    SEARCH: Final = "search"
    IMPORT_PREVIEW: Final = "import preview"
    IMPORT: Final = "import"


class Delivered:
    """`delivered`: one event per card a delivered box woke (its `CardDelivery`); the event's
    time is when the card became redeemable, and with it owed (docs/cards.md)."""

    DELIVERY: Final = "delivery"
    """The CardDelivery's id."""
    REFERENCE: Final = "reference"
    """The box's label as the operator typed it."""


class PrintOrdered:
    """`print_ordered`: who ordered which cards printed, to which printer's key."""

    ORDER: Final = "order"
    PRINTER: Final = "printer"
    """The printer's name."""
    FINGERPRINT: Final = "fingerprint"
    LAYOUT: Final = "layout"
    SERIES: Final = "series"
    FIRST_SERIAL: Final = "first_serial"
    LAST_SERIAL: Final = "last_serial"
    CARDS: Final = "cards"
    """How many cards of the range were to be printed."""


class PrintDownloaded:
    """`print_downloaded`: who downloaded an order's encrypted file, and which file."""

    ORDER: Final = "order"
    PRINTER: Final = "printer"
    FINGERPRINT: Final = "fingerprint"
    SHA256: Final = "sha256"
    ROWS: Final = "rows"


# --- one card, one batch, one file ----------------------------------------------------------


def batch_generated_event(*, batch: CardBatch, actor) -> CardEvent:
    return CardEvent.objects.create(
        kind=CardEventKind.GENERATED,
        batch=batch,
        actor=actor,
        serial=batch.first_serial,
        changes={
            Generated.SERIES: batch.series,
            Generated.FIRST_SERIAL: batch.first_serial,
            Generated.LAST_SERIAL: batch.last_serial,
            Generated.QUANTITY: batch.quantity,
            Generated.AMOUNT: str(batch.amount),
            Generated.CURRENCY: batch.currency,
            Generated.PIN_LENGTH: batch.pin_length,
            Generated.RESELLER: batch.reseller.name if batch.reseller else None,
            Generated.EXPIRES_AT: batch.expires_at.isoformat(),
            Generated.DORMANT: batch.dormant,
        },
    )


def card_redeemed_event(*, card: TopUpCard, balance, subscriber, actor, channel: str) -> CardEvent:
    return CardEvent.objects.create(
        kind=CardEventKind.REDEEMED,
        card=card,
        serial=card.serial,
        actor=actor,
        subscriber=subscriber,
        channel=channel,
        changes={
            Redeemed.BALANCE: balance.pk,
            Redeemed.AMOUNT: str(card.amount),
            Redeemed.CURRENCY: card.currency,
        },
    )


def card_redeem_failed_event(
    *, card: TopUpCard | None, reason: str, subscriber, actor, channel: str, ip_address
) -> CardEvent:
    """`card` when the code found one (blocked, expired, …), else None."""
    return CardEvent.objects.create(
        kind=CardEventKind.REDEEM_FAILED,
        serial=card.serial if card else "",
        card_id=card.pk if card else None,
        actor=actor,
        subscriber=subscriber,
        channel=channel,
        ip_address=ip_address,
        changes={RedeemFailed.REASON: reason},
    )


def card_reversed_event(*, card: TopUpCard, reason: str, reversal, actor) -> CardEvent:
    return CardEvent.objects.create(
        kind=CardEventKind.REVERSED,
        card=card,
        serial=card.serial,
        actor=actor,
        subscriber=card.activated_by,
        channel=Channel.ADMIN,
        changes={
            Reversed.REASON: reason,
            Reversed.AMOUNT: str(card.amount),
            Reversed.CURRENCY: card.currency,
            Reversed.REVERSAL_ENTRY: reversal.pk,
            Reversed.BLOCKED: [False, True],
        },
    )


def card_pin_revealed_event(*, card: TopUpCard, actor, ip_address) -> CardEvent:
    return CardEvent.objects.create(
        kind=CardEventKind.PIN_REVEALED,
        card=card,
        serial=card.serial,
        batch_id=card.batch_id,
        actor=actor,
        channel=Channel.ADMIN,
        ip_address=ip_address,
    )


def cards_exported_event(
    *, description: dict, rows: int, with_pins: bool, complete: bool, actor, channel: str
) -> CardEvent:
    """The streamed CSV export; `description` is the selection (the search's filters)."""
    return CardEvent.objects.create(
        kind=CardEventKind.EXPORTED,
        actor=actor,
        channel=channel,
        serial=str(description.get("series", ""))[:20],
        changes={
            Exported.FILTER: description,
            Exported.ROWS: rows,
            Exported.WITH_PINS: with_pins,
            Exported.COMPLETE: complete,
        },
    )


def export_action_event(*, file_format: str, rows: int, with_pins: bool, actor) -> CardEvent:
    """The admin's Export action (CSV, XLSX, JSON of a selection)."""
    return CardEvent.objects.create(
        kind=CardEventKind.EXPORTED,
        actor=actor,
        channel=Channel.ADMIN,
        changes={
            Exported.WHAT: Exported.EXPORT_ACTION,
            Exported.FORMAT: file_format,
            Exported.ROWS: rows,
            Exported.WITH_PINS: with_pins,
        },
    )


def cards_imported_event(*, first_serial: str, rows: int, file_name: str, actor) -> CardEvent:
    return CardEvent.objects.create(
        kind=CardEventKind.IMPORTED,
        actor=actor,
        serial=first_serial[:20],
        changes={Imported.ROWS: rows, Imported.FILE: file_name},
    )


def pins_checked_event(
    *, what: str, checked: int, matched: int, actor, ip_address: str | None
) -> CardEvent:
    """A search by PIN or an import's uniqueness check (WHAT is a `PinsChecked` value)."""
    return CardEvent.objects.create(
        kind=CardEventKind.PINS_CHECKED,
        actor=actor,
        channel=Channel.ADMIN,
        ip_address=ip_address,
        changes={
            PinsChecked.WHAT: what,
            PinsChecked.CHECKED: checked,
            PinsChecked.MATCHED: matched,
        },
    )


def print_ordered_event(*, order, actor, ip_address) -> CardEvent:
    return CardEvent.objects.create(
        kind=CardEventKind.PRINT_ORDERED,
        batch_id=order.batch_id,
        serial=order.first_serial,
        actor=actor,
        channel=Channel.ADMIN,
        ip_address=ip_address,
        changes={
            PrintOrdered.ORDER: order.pk,
            PrintOrdered.PRINTER: order.printer.name,
            PrintOrdered.FINGERPRINT: order.key_fingerprint,
            PrintOrdered.LAYOUT: order.layout,
            PrintOrdered.SERIES: order.series,
            PrintOrdered.FIRST_SERIAL: order.first_serial,
            PrintOrdered.LAST_SERIAL: order.last_serial,
            PrintOrdered.CARDS: order.expected,
        },
    )


def print_downloaded_event(*, order, actor, ip_address) -> CardEvent:
    return CardEvent.objects.create(
        kind=CardEventKind.PRINT_DOWNLOADED,
        batch_id=order.batch_id,
        serial=order.first_serial,
        actor=actor,
        channel=Channel.ADMIN,
        ip_address=ip_address,
        changes={
            PrintDownloaded.ORDER: order.pk,
            PrintDownloaded.PRINTER: order.printer.name,
            PrintDownloaded.FINGERPRINT: order.key_fingerprint,
            PrintDownloaded.SHA256: order.sha256,
            PrintDownloaded.ROWS: order.rows,
        },
    )


# --- every selected card at once (database expressions over each card's row) ------------------


@dataclass(frozen=True)
class EachCardEvent:
    """An event cards.sql.selection.insert_card_events writes for each selected card."""

    kind: str
    changes: JSONObject
    """Over the card's columns, as they are before the statement that changes them."""
    linked: bool = True
    """Whether the event links to its card (a deleted card's event keeps only the serial)."""


def _json_text(value: str | None) -> Value:
    return Value(value, output_field=CharField()) if value is not None else Value(None)


def expiry_edited_events(expires_at) -> EachCardEvent:
    """Each card's expiry becomes `expires_at`."""
    changes = {
        Edited.FIELD: Value(Edited.EXPIRES_AT),
        Edited.OLD: F("expires_at"),
        Edited.NEW: _json_text(expires_at.isoformat()),
    }
    return EachCardEvent(CardEventKind.EDITED, JSONObject(**changes))


def reseller_edited_events(reseller) -> EachCardEvent:
    """Each card's reseller becomes `reseller` (None: no reseller)."""
    changes = {
        Edited.FIELD: Value(Edited.RESELLER),
        Edited.OLD: F("reseller_id"),
        Edited.NEW: Value(reseller.pk if reseller else None, output_field=BigIntegerField()),
        Edited.NEW_NAME: _json_text(reseller.name if reseller else None),
    }
    return EachCardEvent(CardEventKind.EDITED, JSONObject(**changes))


def block_events(blocked: bool) -> EachCardEvent:
    """Each card's flag becomes `blocked`: a `blocked` or an `unblocked` event."""
    changes = {
        Edited.FIELD: Value(Edited.BLOCKED),
        Edited.OLD: Value(not blocked),
        Edited.NEW: Value(blocked),
    }
    kind = CardEventKind.BLOCKED if blocked else CardEventKind.UNBLOCKED
    return EachCardEvent(kind, JSONObject(**changes))


def deleted_events() -> EachCardEvent:
    """Each card is deleted: the card as it is just before it goes (see `Deleted`)."""
    changes = {
        Deleted.AMOUNT: Cast("amount", CharField()),
        Deleted.CURRENCY: F("currency"),
        Deleted.RESELLER: F("reseller_id"),
        Deleted.SERIES: F("series"),
        Deleted.CREATED_AT: F("created_at"),
        Deleted.EXPIRES_AT: F("expires_at"),
        Deleted.BLOCKED: F("blocked"),
        Deleted.DORMANT: F("dormant"),
    }
    return EachCardEvent(CardEventKind.DELETED, JSONObject(**changes), linked=False)


def delivered_events(delivery) -> EachCardEvent:
    """Each dormant card of `delivery`'s range wakes up."""
    changes = {
        Delivered.DELIVERY: Value(delivery.pk, output_field=BigIntegerField()),
        Delivered.REFERENCE: _json_text(delivery.reference),
    }
    return EachCardEvent(CardEventKind.DELIVERED, JSONObject(**changes))


def redeemed_jsonb(
    *, balance: sql.Composable, amount: sql.Composable, currency: sql.Composable
) -> sql.Composed:
    """`card_redeemed_event`'s payload in PostgreSQL, from SQL expressions of the balance's id,
    the card's amount (numeric, written as text) and currency."""
    return sql.SQL("jsonb_build_object({}, {}, {}, ({})::text, {}, {})").format(
        sql.Literal(Redeemed.BALANCE),
        balance,
        sql.Literal(Redeemed.AMOUNT),
        amount,
        sql.Literal(Redeemed.CURRENCY),
        currency,
    )
