"""Streaming CSV export of cards: constant memory whatever the size of the series.

On PostgreSQL the rows leave the database through `COPY (SELECT …) TO STDOUT WITH CSV`, formatted
by the database; Python only decrypts the PIN column when the user may see PINs. Elsewhere
(SQLite) the same columns are written with `csv.writer` from a chunked iterator. Both paths give
byte-identical output (tested).
"""

import csv
import datetime as dt
import io
from collections.abc import Callable, Iterator

from django.db import connections
from django.db.models import Case, CharField, F, Func, QuerySet, TextField, Value, When
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from common.replicas import reachable

from . import pins
from .events import cards_exported_event
from .models import TopUpCard
from .models.cards import card_status
from .models.formats import serial_expression
from .sql import exports as sql

COLUMNS = [
    "Serial Number",
    "Amount",
    "Currency",
    "PIN Code",
    "Reseller",
    "Status",
    "Expiry Date",
    "Activated",
    "Created on",
]
HEADER = (",".join(COLUMNS) + "\n").encode()
_CHUNK = 5_000
_FLUSH_BYTES = 256 * 1024

Progress = Callable[[int], None]


def format_time(value: dt.datetime | None) -> str:
    """The export's time format, UTC to the second: 2026-11-23 10:00:00+00:00."""
    if value is None:
        return ""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S+00:00")


def format_activated(card_activated_at, client_name) -> str:
    if card_activated_at is None:
        return ""
    return f"{format_time(card_activated_at)} {client_name or ''}".rstrip()


def export_ordering(queryset: QuerySet[TopUpCard]) -> QuerySet[TopUpCard]:
    """Serial order: a printed box is a contiguous range."""
    return queryset.order_by("series", "number")


# --- PostgreSQL: COPY … TO STDOUT WITH CSV ---------------------------------------------------


def _pg_time(field: str):
    return Func(
        F(field),
        template="to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00:00'",
        output_field=CharField(),
    )


def _pg_select(queryset: QuerySet[TopUpCard], *, with_pins: bool, at: dt.datetime):
    masked = Func(
        Concat(
            Func(
                Value("•"), F("pin_length") - Value(4), function="REPEAT", output_field=CharField()
            ),
            F("pin_last4"),
        ),
        Value(r"(.{4})(?!$)"),
        Value(r"\1 "),
        Value("g"),
        function="REGEXP_REPLACE",
        output_field=CharField(),
    )
    annotated = queryset.annotate_status(at=at).annotate(
        x_serial=serial_expression(),
        x_amount=Cast("amount", TextField()),
        x_pin=Func(F("pin_encrypted"), Value("hex"), function="ENCODE", output_field=CharField())
        if with_pins
        else masked,
        x_expires=_pg_time("expires_at"),
        x_activated=Case(
            When(
                activated_at__isnull=False,
                then=Func(
                    Concat(_pg_time("activated_at"), Value(" "), F("activated_by__name")),
                    function="RTRIM",
                    output_field=CharField(),
                ),
            ),
            default=None,
            output_field=CharField(),
        ),
        x_created=_pg_time("created_at"),
    )
    names = ["x_serial", "x_amount", "currency", "x_pin", "reseller__name", "status"]
    names += ["x_expires", "x_activated", "x_created"]
    if with_pins:  # the encrypted PIN leads, so Python can find it without parsing the CSV
        names = ["x_pin", *[n for n in names if n != "x_pin"]]
    return export_ordering(annotated).values_list(*names)


def _pg_rows(queryset, *, with_pins: bool, at, progress: Progress | None) -> Iterator[bytes]:
    """Blocks of whole CSV lines (about 256 KB each); PINs decrypted in place when allowed."""
    decrypt = pins.decryptor() if with_pins else None
    pending: list[bytes] = []
    pending_size = 0
    remainder = b""
    rows = 0

    def flush() -> bytes:
        nonlocal remainder, rows
        data = remainder + b"".join(pending)
        pending.clear()
        cut = data.rfind(b"\n") + 1
        remainder = data[cut:]
        if decrypt is None:
            rows += data.count(b"\n", 0, cut)
            return data[:cut]
        out = []
        for line in data[:cut].split(b"\n")[:-1]:
            pin_hex, serial, amount, currency, rest = line.split(b",", 4)
            pin = decrypt(bytes.fromhex(pin_hex.decode())).encode()
            out.append(b",".join((serial, amount, currency, pin, rest)))
        rows += len(out)
        out.append(b"")
        return b"\n".join(out)

    for block in sql.copy_csv(_pg_select(queryset, with_pins=with_pins, at=at)):
        pending.append(block)
        pending_size += len(block)
        if pending_size >= _FLUSH_BYTES:
            pending_size = 0
            yield flush()
            if progress:
                progress(rows)
    tail = flush()
    if tail:
        yield tail
    if remainder:
        raise RuntimeError("The database ended the export in the middle of a row.")
    if progress:
        progress(rows)


# --- Any other database: csv.writer over a chunked iterator ---------------------------------


def _generic_rows(queryset, *, with_pins: bool, at, progress: Progress | None) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    rows = 0
    cards = export_ordering(queryset).select_related("reseller", "activated_by")
    for card in cards.iterator(chunk_size=_CHUNK):
        pin = pins.decrypt_pin(card.pin_encrypted) if with_pins else card.masked_pin
        writer.writerow(
            [
                card.serial,
                f"{card.amount:.2f}",
                card.currency,
                pin,
                card.reseller.name if card.reseller else "",
                card_status(card, at),
                format_time(card.expires_at),
                format_activated(
                    card.activated_at, card.activated_by.name if card.activated_by else ""
                ),
                format_time(card.created_at),
            ]
        )
        rows += 1
        if buffer.tell() >= _FLUSH_BYTES:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
            if progress:
                progress(rows)
    if buffer.tell():
        yield buffer.getvalue().encode()
    if progress:
        progress(rows)


def export_csv(
    queryset: QuerySet[TopUpCard],
    *,
    with_pins: bool,
    progress: Progress | None = None,
    at: dt.datetime | None = None,
) -> Iterator[bytes]:
    """The CSV of these cards in serial order, as a stream of byte blocks (header first).

    `with_pins` decrypts PINs: callers decide who may (permission `cards.view_pin`) and audit it.
    `progress(rows_written)` is called after each block.
    """
    at = at or timezone.now()
    # A replica chosen by the view may have gone away since: then the primary, before any row.
    queryset = queryset.using(reachable(queryset.db))
    yield HEADER
    rows = _pg_rows if connections[queryset.db].vendor == "postgresql" else _generic_rows
    yield from rows(queryset, with_pins=with_pins, at=at, progress=progress)


def export_with_audit(
    queryset: QuerySet[TopUpCard],
    *,
    actor,
    with_pins: bool,
    description: dict,
    channel: str,
    progress: Progress | None = None,
) -> Iterator[bytes]:
    """`export_csv`, then an EXPORTED audit event: who, which selection, how many rows, with PINs.

    The event is written when the stream ends, also when the client goes away mid-way
    (`complete` is then false), so every export that started is on record.
    """
    rows = 0
    complete = False

    def count(written: int) -> None:
        nonlocal rows
        rows = written
        if progress:
            progress(written)

    try:
        yield from export_csv(queryset, with_pins=with_pins, progress=count)
        complete = True
    finally:
        cards_exported_event(
            description=description,
            rows=rows,
            with_pins=with_pins,
            complete=complete,
            actor=actor,
            channel=channel,
        )
