"""The CSV export's raw SQL (PostgreSQL): COPY (SELECT …) TO STDOUT, the database writing the CSV.

Raw SQL because the ORM has no COPY. The statement stands in for the ORM path named beside it,
which is the reference.
"""

from collections.abc import Iterator

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import QuerySet
from psycopg import sql

# --- export: COPY … TO STDOUT (PostgreSQL) ----------------------------------------------------
# Stands in for csv.writer over a chunked iterator of cards (cards.exports, the path on other
# databases); the database formats every column as that path does, byte for byte.


def copy_csv(select: QuerySet) -> Iterator[bytes]:
    """The rows `select` (a values_list) gives, as CSV blocks, in the order it gives them."""
    try:
        query, params = select.query.sql_with_params()
    except EmptyResultSet:  # e.g. .none(): nothing to ask the database
        return
    statement = sql.SQL("COPY ({select}) TO STDOUT WITH (FORMAT csv)").format(select=sql.SQL(query))
    database = connections[select.db]  # a replica for a stale-tolerant export
    with database.cursor() as cursor, database.wrap_database_errors:
        with cursor.cursor.copy(statement.as_string(), params) as copy:
            for block in copy:  # libpq hands over one row at a time
                yield bytes(block)
