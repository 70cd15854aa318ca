"""The import's raw SQL (every database): the uploaded rows in a temporary table, checked across
rows and against the cards by one statement per finding, then moved into the cards table.

Raw SQL because each check is one statement over the whole file (a serial or PIN twice in it, a
serial or PIN a card has) instead of a look-up per row, on a temporary table no model describes.
Unlike the other modules of cards.sql this is no stand-in for an ORM path: it runs on SQLite
too, and where the two databases differ it branches on `connection.vendor`.
"""

from django.db import connection
from psycopg import sql

from cards.models import TopUpCard
from cards.models.formats import SERIAL_NUMBER_DIGITS
from cards.sql.generation import CARD_COLUMNS

# --- import: the uploaded rows in a temporary table (every database) -----------------------------
# Not a stand-in for an ORM path: the import's checks across rows and against the cards run here
# on both databases (cards.services.importing). The table holds what the cards table will hold
# (digest, encrypted copy, last four digits: never a clear PIN) plus each row's findings, and
# lives until the transaction ends (PostgreSQL drops it at the commit or rollback; on SQLite the
# caller drops it, `import_stage_drop`).

_IMPORT_TABLE = sql.Identifier("topup_import_rows")
IMPORT_STAGE_COLUMNS = (
    "line",
    "series",
    "number",
    "amount",
    "currency",
    "pin_digest",
    "pin_encrypted",
    "pin_length",
    "pin_last4",
    "reseller_id",
    "reseller_bad",
    "expires_at",
    "problems",
    "taken_by",
)
_IMPORT_CREATE = sql.SQL(
    "CREATE TEMPORARY TABLE {rows} (line int8 PRIMARY KEY, series varchar(6), number int8,"
    " amount numeric, currency varchar(3), pin_digest bytea, pin_encrypted bytea,"
    " pin_length int2, pin_last4 varchar(4), reseller_id int8, reseller_bad bool NOT NULL,"
    " expires_at timestamptz, problems text, taken_by text,"
    " serial_twice bool NOT NULL DEFAULT false, serial_exists bool NOT NULL DEFAULT false,"
    " pin_twice bool NOT NULL DEFAULT false, series_refusal text){on_commit}"
)
_IMPORT_INSERT = sql.SQL("INSERT INTO {rows} ({columns}) VALUES ({values})").format(
    rows=_IMPORT_TABLE,
    columns=sql.SQL(", ").join(map(sql.Identifier, IMPORT_STAGE_COLUMNS)),
    values=sql.SQL(", ").join(sql.Placeholder() * len(IMPORT_STAGE_COLUMNS)),
)
_IMPORT_COPY = sql.SQL("COPY {rows} ({columns}) FROM STDIN").format(
    rows=_IMPORT_TABLE, columns=sql.SQL(", ").join(map(sql.Identifier, IMPORT_STAGE_COLUMNS))
)


def _execute(cursor, statement: sql.SQL, params=(), **parts) -> None:
    """Run `statement`, its {rows} the staged table's name and its other {parts} composed in."""
    cursor.execute(statement.format(rows=_IMPORT_TABLE, **parts).as_string(), params)


def import_stage_create() -> None:
    postgres = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        _execute(cursor, sql.SQL("DROP TABLE IF EXISTS {rows}"))
        on_commit = sql.SQL(" ON COMMIT DROP" if postgres else "")
        cursor.execute(_IMPORT_CREATE.format(rows=_IMPORT_TABLE, on_commit=on_commit).as_string())


def import_stage_drop() -> None:
    with connection.cursor() as cursor:
        _execute(cursor, sql.SQL("DROP TABLE IF EXISTS {rows}"))


def import_stage_rows(rows: list[tuple]) -> None:
    """One round trip for a chunk of rows (values in IMPORT_STAGE_COLUMNS order): a COPY on
    PostgreSQL; on SQLite, which has no round trip, one executemany."""
    with connection.cursor() as cursor, connection.wrap_database_errors:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(_IMPORT_COPY.as_string()) as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            ops = connection.ops
            adapted = [
                (*row[:11], ops.adapt_datetimefield_value(row[11]), *row[12:]) for row in rows
            ]
            cursor.executemany(_IMPORT_INSERT.as_string(), adapted)


# Each finding is one statement over the whole table; the serial and PIN indexes on the staged
# rows serve the self-joins, card_serial_unique and the pin_digest index the look-ups in cards.
_IMPORT_FINDINGS = (
    sql.SQL("CREATE INDEX topup_import_serial ON {rows} (series, number)"),
    sql.SQL("CREATE INDEX topup_import_pin ON {rows} (pin_digest)"),
    sql.SQL(
        "UPDATE {rows} SET serial_twice = true WHERE series IS NOT NULL AND EXISTS ("
        " SELECT 1 FROM {rows} AS t WHERE t.series = {rows}.series AND t.number = {rows}.number"
        " AND t.line < {rows}.line)"
    ),
    sql.SQL(
        "UPDATE {rows} SET serial_exists = true WHERE series IS NOT NULL AND NOT serial_twice"
        " AND EXISTS (SELECT 1 FROM {cards} AS c WHERE c.series = {rows}.series"
        " AND c.number = {rows}.number)"
    ),
    sql.SQL(
        "UPDATE {rows} SET pin_twice = true WHERE pin_digest IS NOT NULL AND EXISTS ("
        " SELECT 1 FROM {rows} AS t WHERE t.pin_digest = {rows}.pin_digest"
        " AND t.line < {rows}.line)"
    ),
)
# Rows the series rule applies to (cards.services.scope): a readable, unique serial and a known
# reseller.
_SERIES_ELIGIBLE = sql.SQL(
    "series IS NOT NULL AND NOT serial_twice AND NOT serial_exists AND NOT reseller_bad"
)
_IMPORT_PROBLEM = sql.SQL(
    "problems IS NOT NULL OR serial_twice OR serial_exists OR pin_twice OR taken_by IS NOT NULL"
    " OR series_refusal IS NOT NULL"
)


# A PIN a card has under the current digest key, as one join (older keys' digests are looked up
# chunk by chunk as the file is read: they are not staged).
_IMPORT_TAKEN = sql.SQL(
    "UPDATE {rows} SET taken_by = {serial} FROM {cards} AS c"
    " WHERE c.pin_digest = {rows}.pin_digest AND {rows}.taken_by IS NULL"
)
_SERIAL_TEXT = {
    "postgresql": sql.SQL("c.series || '-' || lpad(c.number::text, {digits}, '0')"),
    "sqlite": sql.SQL("c.series || '-' || substr('000000000' || c.number, -{digits}, {digits})"),
}


def import_stage_findings() -> list[tuple[str, int | None, int]]:
    """Mark every row's findings across rows and against the cards; returns the (series,
    reseller id, first line) of each series and reseller the series rule applies to."""
    cards = sql.Identifier(TopUpCard._meta.db_table)
    serial = _SERIAL_TEXT[connection.vendor].format(digits=sql.Literal(SERIAL_NUMBER_DIGITS))
    with connection.cursor() as cursor:
        for statement in _IMPORT_FINDINGS[:2]:
            _execute(cursor, statement)
        if connection.vendor == "postgresql":
            _execute(cursor, sql.SQL("ANALYZE {rows}"))  # temporary tables get no autovacuum
        _execute(cursor, _IMPORT_TAKEN, cards=cards, serial=serial)
        for statement in _IMPORT_FINDINGS[2:]:
            _execute(cursor, statement, cards=cards)
        _execute(
            cursor,
            sql.SQL(
                "SELECT series, reseller_id, min(line) FROM {rows} WHERE {eligible}"
                " GROUP BY series, reseller_id ORDER BY min(line)"
            ),
            eligible=_SERIES_ELIGIBLE,
        )
        return cursor.fetchall()


def import_stage_refuse_series(refusals: list[tuple[str, str, int | None]]) -> None:
    """Mark the rows of each (message, series, reseller id) the series rule refuses."""
    statement = sql.SQL(
        "UPDATE {rows} SET series_refusal = %s WHERE series = %s"
        " AND (reseller_id = %s OR (reseller_id IS NULL AND %s IS NULL)) AND {eligible}"
    ).format(rows=_IMPORT_TABLE, eligible=_SERIES_ELIGIBLE)
    with connection.cursor() as cursor:
        cursor.executemany(
            statement.as_string(),
            [(message, series, reseller, reseller) for message, series, reseller in refusals],
        )


def import_stage_summary() -> tuple[int, int, int, int]:
    """(rows with a problem, distinct PINs, distinct PINs a card has, rows)."""
    with connection.cursor() as cursor:
        _execute(
            cursor,
            sql.SQL(
                "SELECT count(*) FILTER (WHERE {problem}), count(DISTINCT pin_digest),"
                " count(DISTINCT CASE WHEN taken_by IS NOT NULL THEN pin_digest END), count(*)"
                " FROM {rows}"
            ),
            problem=_IMPORT_PROBLEM,
        )
        return cursor.fetchone()


def import_stage_problems(limit: int) -> list[tuple]:
    """The first `limit` rows with a problem, in file order: line, series, number, problems,
    serial_twice, serial_exists, pin_twice, taken_by, series_refusal."""
    with connection.cursor() as cursor:
        _execute(
            cursor,
            sql.SQL(
                "SELECT line, series, number, problems, serial_twice, serial_exists, pin_twice,"
                " taken_by, series_refusal FROM {rows} WHERE {problem} ORDER BY line LIMIT %s"
            ),
            [limit],
            problem=_IMPORT_PROBLEM,
        )
        return cursor.fetchall()


def import_stage_series() -> list[tuple[str, int | None]]:
    """Each (series, reseller id) of the staged rows, in a fixed order (the series locks')."""
    with connection.cursor() as cursor:
        _execute(
            cursor,
            sql.SQL("SELECT DISTINCT series, reseller_id FROM {rows} ORDER BY series, reseller_id"),
        )
        return cursor.fetchall()


def import_stage_write(*, first: int, last: int, created_at) -> int:
    """Move the staged rows of lines `first`…`last` into the cards table; how many were written.
    A card committed meanwhile with one of their serials or PINs fails it on the unique
    indexes (IntegrityError), and with it the whole import. Imported cards are live (not blocked,
    not dormant: a file from another system holds cards already on sale), with no batch."""
    statement = sql.SQL(
        "INSERT INTO {cards} ({columns}) SELECT series, number, amount, currency, pin_digest,"
        " pin_encrypted, pin_length, pin_last4, reseller_id, expires_at, false, false, NULL, %s"
        " FROM {rows} WHERE line BETWEEN %s AND %s ORDER BY line"
    ).format(
        cards=sql.Identifier(TopUpCard._meta.db_table),
        columns=sql.SQL(", ").join(map(sql.Identifier, CARD_COLUMNS)),
        rows=_IMPORT_TABLE,
    )
    created = connection.ops.adapt_datetimefield_value(created_at)
    with connection.cursor() as cursor:
        cursor.execute(statement.as_string(), [created, first, last])
        return cursor.rowcount
