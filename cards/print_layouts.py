"""The named column layouts of a print file (docs/printing.md): what the printing house's
variable-data software reads. Each layout is one header line and one line per card, UTF-8, the
card's fields in the layout's order; PINs and serials stay text (leading zeros kept).
"""

import csv
import datetime as dt
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal

from .pins import format_pin


@dataclass(frozen=True)
class PrintCard:
    """One card of a print file, PIN in clear: exists only in memory on its way into gpg."""

    serial: str
    pin: str
    amount: Decimal
    currency: str
    expires_at: dt.datetime
    reseller: str


@dataclass(frozen=True)
class PrintLayout:
    key: str
    label: str
    columns: tuple[tuple[str, Callable[[PrintCard], str]], ...]
    delimiter: str = ","


def _day(card: PrintCard) -> str:
    return f"{card.expires_at.astimezone(dt.UTC):%Y-%m-%d}"


def _moment(card: PrintCard) -> str:
    return f"{card.expires_at.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S}"


LAYOUTS: dict[str, PrintLayout] = {
    layout.key: layout
    for layout in (
        PrintLayout(
            "standard",
            "Standard CSV: Serial Number, PIN Code, Amount, Currency, Expiry Date (UTC), Reseller",
            (
                ("Serial Number", lambda c: c.serial),
                ("PIN Code", lambda c: c.pin),
                ("Amount", lambda c: str(c.amount)),
                ("Currency", lambda c: c.currency),
                ("Expiry Date", _moment),
                ("Reseller", lambda c: c.reseller),
            ),
        ),
        PrintLayout(
            "scratch",
            "Scratch card CSV: PIN in groups of four, face value and valid-until date as printed",
            (
                ("PIN", lambda c: format_pin(c.pin)),
                ("Serial", lambda c: c.serial),
                ("Face Value", lambda c: f"{c.amount} {c.currency}"),
                ("Valid Until", _day),
                ("Sold By", lambda c: c.reseller),
            ),
        ),
        PrintLayout(
            "tabbed",
            "Tab-separated: Serial, PIN, Amount, Currency, Expiry (date), Reseller",
            (
                ("Serial", lambda c: c.serial),
                ("PIN", lambda c: c.pin),
                ("Amount", lambda c: str(c.amount)),
                ("Currency", lambda c: c.currency),
                ("Expiry", _day),
                ("Reseller", lambda c: c.reseller),
            ),
            delimiter="\t",
        ),
    )
}
LAYOUT_CHOICES = [(layout.key, layout.label) for layout in LAYOUTS.values()]


def print_lines(
    layout: PrintLayout, cards: Iterable[PrintCard], *, per_block=500
) -> Iterator[bytes]:
    """The print file of `cards` in `layout`, as blocks of about `per_block` lines."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=layout.delimiter, lineterminator="\r\n")
    writer.writerow([header for header, _ in layout.columns])
    count = 0
    for card in cards:
        writer.writerow([value(card) for _, value in layout.columns])
        count += 1
        if count % per_block == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()
