"""Generation's raw SQL (PostgreSQL): a batch's cards in one binary COPY or, into a table that
holds cards already, through a temporary staging table moved in slices by INSERT … ON CONFLICT.

Raw SQL because the ORM has neither COPY nor an INSERT that skips the cards whose PIN another
card has and says which it skipped. The ORM path, `TopUpCard.objects.bulk_create` in chunks
(cards.services.generation), is the reference and runs on every other database. CARD_COLUMNS,
the columns a card is written with, lives here; the import writes the same columns
(cards.sql.importing).
"""

from collections.abc import Iterable

from django.db import connection
from psycopg import sql

from cards.models import TopUpCard

# --- generation: COPY of a batch's cards (PostgreSQL) -------------------------------------------
# Stands in for `TopUpCard.objects.bulk_create` in chunks (cards.services.generation, the path
# on other databases); the same columns, in this order, make both. A PIN another card has
# already fails the whole COPY on the unique index on pin_digest: the caller replaces the
# clashing PINs and copies again (card_serial_unique guards the serials the same way).

_CARD_COLUMN_TYPES = (
    ("series", "varchar"),
    ("number", "int8"),
    ("amount", "numeric"),
    ("currency", "varchar"),
    ("pin_digest", "bytea"),
    ("pin_encrypted", "bytea"),
    ("pin_length", "int2"),
    ("pin_last4", "varchar"),
    ("reseller_id", "int8"),
    ("expires_at", "timestamptz"),
    ("blocked", "bool"),
    ("dormant", "bool"),
    ("batch_id", "int8"),
    ("created_at", "timestamptz"),
)
CARD_COLUMNS = tuple(column for column, _ in _CARD_COLUMN_TYPES)
_COPY_CARDS = (
    sql.SQL("COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)")
    .format(
        table=sql.Identifier(TopUpCard._meta.db_table),
        columns=sql.SQL(", ").join(map(sql.Identifier, CARD_COLUMNS)),
    )
    .as_string()
)


def copy_cards(rows: Iterable[tuple]) -> None:
    """Write `rows` (values in CARD_COLUMNS order) in one binary COPY, inside Django's
    transaction."""
    with connection.cursor() as cursor, connection.wrap_database_errors:
        with cursor.cursor.copy(_COPY_CARDS) as copy:
            copy.set_types([kind for _, kind in _CARD_COLUMN_TYPES])
            for row in rows:
                copy.write_row(row)


# Into a table that holds cards already, a new PIN can equal an existing card's (about 30 times
# in a million-card batch beside 3 million cards of 12 digits), and one clash fails the COPY
# above as a whole. So there the batch is copied into a temporary table first, holding only what
# the cards table will hold (digest, encrypted copy, last four digits: never a clear PIN), and
# moved in slices with INSERT … ON CONFLICT (pin_digest) DO NOTHING: each slice reports the few
# numbers it skipped, the caller gives those new PINs (`restage_cards`) and inserts them again.
# ON CONFLICT also waits for a concurrent batch that holds the same PIN uncommitted, so two
# generations at once never fail on each other.

_STAGED_TABLE = sql.Identifier("topup_new_cards")
_STAGED_COLUMNS = ("number", "pin_digest", "pin_encrypted", "pin_last4")


def stage_cards(rows: Iterable[tuple]) -> None:
    """Copy `rows` (number, pin_digest, pin_encrypted, pin_last4) into the staging table, new for
    this transaction."""
    staged = _STAGED_TABLE
    with connection.cursor() as cursor, connection.wrap_database_errors:
        cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(staged).as_string())
        cursor.execute(
            sql.SQL(
                "CREATE TEMPORARY TABLE {} (number int8 PRIMARY KEY, pin_digest bytea NOT NULL,"
                " pin_encrypted bytea NOT NULL, pin_last4 varchar NOT NULL) ON COMMIT DROP"
            )
            .format(staged)
            .as_string()
        )
        copy_statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            staged, sql.SQL(", ").join(map(sql.Identifier, _STAGED_COLUMNS))
        )
        with cursor.cursor.copy(copy_statement) as copy:
            copy.set_types(["int8", "bytea", "bytea", "varchar"])
            for row in rows:
                copy.write_row(row)
        # Temporary tables get no autovacuum statistics: the slices below need the number index.
        cursor.execute(sql.SQL("ANALYZE {}").format(staged).as_string())


_INSERT_STAGED = sql.SQL(
    "WITH inserted AS ("
    " INSERT INTO {table} ({columns})"
    " SELECT %(series)s, s.number, %(amount)s, %(currency)s, s.pin_digest, s.pin_encrypted,"
    " %(pin_length)s, s.pin_last4, %(reseller)s, %(expires)s, false, %(dormant)s, %(batch)s,"
    " %(created)s"
    " FROM {staged} AS s WHERE {where} ORDER BY s.number"
    " ON CONFLICT (pin_digest) DO NOTHING RETURNING number)"
    " SELECT s.number FROM {staged} AS s WHERE {where}"
    " AND NOT EXISTS (SELECT FROM inserted AS i WHERE i.number = s.number) ORDER BY s.number"
)
_STAGED_RANGE = sql.SQL("s.number BETWEEN %(first)s AND %(last)s")
_STAGED_LIST = sql.SQL("s.number = ANY(%(numbers)s)")


def _insert_staged_statement(where: sql.Composable) -> str:
    return _INSERT_STAGED.format(
        table=sql.Identifier(TopUpCard._meta.db_table),
        columns=sql.SQL(", ").join(map(sql.Identifier, CARD_COLUMNS)),
        staged=_STAGED_TABLE,
        where=where,
    ).as_string()


def insert_staged_cards(batch, *, first=None, last=None, numbers=None) -> list[int]:
    """Move the staged cards numbered `first`…`last` (or `numbers`) into the cards table as cards
    of `batch`; returns the numbers skipped because another card has their PIN."""
    params = {
        "series": batch.series,
        "amount": batch.amount,
        "currency": batch.currency,
        "pin_length": batch.pin_length,
        "reseller": batch.reseller_id,
        "expires": batch.expires_at,
        "dormant": batch.dormant,
        "batch": batch.pk,
        "created": batch.created_at,
    }
    if numbers is None:
        statement = _insert_staged_statement(_STAGED_RANGE)
        params.update(first=first, last=last)
    else:
        statement = _insert_staged_statement(_STAGED_LIST)
        params["numbers"] = list(numbers)
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return [number for (number,) in cursor.fetchall()]


def restage_cards(rows: list[tuple]) -> None:
    """Give the staged cards of `rows` (number, pin_digest, pin_encrypted, pin_last4) new PINs."""
    statement = sql.SQL(
        "UPDATE {staged} AS s SET pin_digest = v.pin_digest, pin_encrypted = v.pin_encrypted,"
        " pin_last4 = v.pin_last4 FROM unnest(%s::int8[], %s::bytea[], %s::bytea[], %s::text[])"
        " AS v(number, pin_digest, pin_encrypted, pin_last4) WHERE s.number = v.number"
    ).format(staged=_STAGED_TABLE)
    columns = [list(column) for column in zip(*rows, strict=True)]
    with connection.cursor() as cursor:
        cursor.execute(statement.as_string(), columns)
