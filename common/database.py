"""What the database told us, in the terms a page needs."""

import psycopg
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections


def database_busy(error: BaseException) -> bool:
    """SQLite's answer when another connection kept the write lock for longer than the busy
    timeout (config/settings/base.py): the request may be tried again, nothing was wrong with it.
    PostgreSQL waits on row locks instead and never says this."""
    return isinstance(error, OperationalError) and "database is locked" in str(error)


_STATEMENT_TIMEOUT = "SELECT set_config('statement_timeout', %s, true)"


def limit_statement_time(milliseconds: int, *, using: str = DEFAULT_DB_ALIAS) -> None:
    """From here to the end of the current transaction (which must be open), PostgreSQL cancels
    any statement that runs, or waits for a lock, longer than `milliseconds`. For pages a person
    waits on: an answer that says "too long" beats a request gunicorn kills at 30 s. No-op on
    SQLite, which has no such setting."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(_STATEMENT_TIMEOUT, [f"{int(milliseconds)}ms"])


def statement_timed_out(error: BaseException) -> bool:
    """Whether a database error is PostgreSQL cancelling a statement for its time limit."""
    return isinstance(error, OperationalError) and isinstance(
        error.__cause__, psycopg.errors.QueryCanceled
    )
