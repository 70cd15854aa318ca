"""Django's database sessions, each request's session read with one prepared statement
(SESSION_ENGINE = "config.sessions").

Every panel and admin request reads its session. The ORM's version of this one-row read took
longer to compile than to run: a third of a panel redemption's Python went into it and the
user's read (config.auth). Writes, expiry and everything else are Django's."""

from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.db import connection
from django.utils import timezone
from psycopg import sql

from wallets.sql import hot_cursor


class SessionStore(DatabaseSessionStore):
    def _get_session_from_db(self):
        if connection.vendor != "postgresql":
            return super()._get_session_from_db()
        if self.session_key is None:  # a new session: nothing to read
            return None
        statement = _statement(self.model)
        with hot_cursor() as cursor:
            cursor.execute(statement, {"key": self.session_key, "now": timezone.now()})
            row = cursor.fetchone()
        if row is None:
            self._session_key = None
            return None
        return self.model(session_key=self.session_key, session_data=row[0], expire_date=row[1])


_statements: dict = {}


def _statement(model) -> str:
    statement = _statements.get(model)
    if statement is None:
        statement = _statements[model] = (
            sql.SQL(
                "SELECT session_data, expire_date FROM {table} "
                "WHERE session_key = %(key)s AND expire_date > %(now)s"
            )
            .format(table=sql.Identifier(model._meta.db_table))
            .as_string()
        )
    return statement
