"""A cursor for the few statements every REST request runs (authentication, throttle, card
top-up): on PostgreSQL they are prepared once per connection, so the server parses and plans
them once instead of on every request (planning the top-up statement costs more than running it).

Django leaves prepared statements off because a pooler in transaction mode (PgBouncer before
1.21, or without `max_prepared_statements`) may run the next statement on a server connection
where the statement was never prepared. Set DATABASE_PREPARED_STATEMENTS=0 behind such a pooler.
"""

from django.conf import settings
from django.db import connection


def hot_cursor():
    """`connection.cursor()`, preparing its statements on PostgreSQL unless disabled."""
    if connection.vendor != "postgresql" or not settings.DATABASE_PREPARED_STATEMENTS:
        return connection.cursor()
    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:
        # Django leaves psycopg's automatic preparing off (threshold None), and then psycopg
        # ignores even an explicit prepare=True. A threshold no query reaches keeps the rest of
        # Django's queries unprepared and lets these statements be prepared.
        raw.prepare_threshold = _EXPLICIT_ONLY
    with connection.wrap_database_errors:
        return connection._prepare_cursor(_prepared_cursor_class()(connection.connection))


_EXPLICIT_ONLY = 2**31 - 1
_class = None


def _hot_query_class():
    """psycopg's query converter, remembering its conversions of every length.

    psycopg turns a statement's %(name)s placeholders into $n on every execute, prepared or not,
    and remembers the result only for texts of up to 4,096 bytes (psycopg._queries,
    MAX_CACHED_STATEMENT_LENGTH): ORMs make long statements that seldom repeat. The few hot
    statements here repeat on every request, and the REST top-up with its caller's lookup is
    6.4 kB: re-split by a regular expression on each request, it cost as much Python as the rest
    of the execute. None (psycopg's own) if a psycopg release has changed the private API."""
    import functools

    try:
        from psycopg._queries import PostgresQuery, _query2pg_nocache
    except ImportError:
        return None
    if not all(hasattr(PostgresQuery, name) for name in ("convert", "dump")):
        return None

    # Keyed by the text itself: a str caches its hash, and the hot statements are the same
    # objects on every request (composed once), where encoding them first would hash 6 kB anew.
    @functools.lru_cache(maxsize=64)
    def converted(query: str, encoding: str):
        return _query2pg_nocache(query.encode(encoding), encoding)

    class HotQuery(PostgresQuery):
        __slots__ = ()

        def convert(self, query, vars):
            if vars is None or not isinstance(query, str):
                return super().convert(query, vars)
            self.query, self._want_formats, self._order, self._parts = converted(
                query, self._tx.encoding
            )
            self.dump(vars)

    return HotQuery


def _prepared_cursor_class():
    global _class
    if _class is None:
        from django.db.backends.postgresql.base import ServerBindingCursor

        class PreparedCursor(ServerBindingCursor):
            """Server-side parameters, and every statement prepared (psycopg keeps them)."""

            _query_cls = _hot_query_class() or ServerBindingCursor._query_cls

            def execute(self, query, params=None, *, prepare=None, binary=None):
                prepare = True if prepare is None else prepare
                return super().execute(query, params, prepare=prepare, binary=binary)

            def _convert_query(self, query, params=None):
                converted = super()._convert_query(query, params)
                # What Django's query log (connection.queries, CaptureQueriesContext) reads:
                # psycopg keeps it only for statements it does not prepare.
                self._query = converted
                return converted

        _class = PreparedCursor
    return _class


def compact(statement) -> str:
    """`statement` (text or composed psycopg SQL) as text without its `--` comments and
    indentation, for the statements every request runs.

    psycopg converts a statement's %(name)s placeholders on each execute, prepared or not, and
    caches the conversion only for texts of up to 4,096 bytes (psycopg._queries,
    MAX_CACHED_STATEMENT_LENGTH): the commented top-up statement (5.5 kB) was split by a regular
    expression and re-encoded on every request. The comments stay in the source, where they
    are read."""
    if not isinstance(statement, str):
        statement = statement.as_string()
    lines = []
    for line in statement.splitlines():
        code = _without_comment(line).strip()
        if code:
            lines.append(code)
    return "\n".join(lines)


def _without_comment(line: str) -> str:
    """The line up to a `--` that is not inside a '…' literal."""
    quoted = False
    for index, char in enumerate(line):
        if char == "'":
            quoted = not quoted
        elif not quoted and line.startswith("--", index):
            return line[:index]
    return line


def advisory_lock(name: str) -> None:
    """Hold a lock named `name` until the transaction ends (PostgreSQL's advisory locks): for a
    check-then-insert with no row to lock. SQLite runs one writing transaction at a time anyway."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [name])
