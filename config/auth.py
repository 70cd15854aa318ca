"""Django's ModelBackend, reading a session's user with one prepared statement.

Every logged-in panel and admin request reads its user by key (django.contrib.auth.get_user).
The ORM's version of this one-row read took longer to compile than to run (config.sessions).
Authentication, permissions and the rules on inactive users are Django's."""

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend as DjangoModelBackend
from django.db import connection
from psycopg import sql

from wallets.sql import hot_cursor


class ModelBackend(DjangoModelBackend):
    def get_user(self, user_id):
        if connection.vendor != "postgresql":
            return super().get_user(user_id)
        model = get_user_model()
        fields = model._meta.concrete_fields
        with hot_cursor() as cursor:
            cursor.execute(_statement(model), {"key": user_id})
            row = cursor.fetchone()
        if row is None:
            return None
        user = model.from_db(connection.alias, [f.attname for f in fields], row)
        return user if self.user_can_authenticate(user) else None


_statements: dict = {}


def _statement(model) -> str:
    statement = _statements.get(model)
    if statement is None:
        statement = _statements[model] = (
            sql.SQL("SELECT {columns} FROM {table} WHERE {key} = %(key)s")
            .format(
                columns=sql.SQL(", ").join(
                    sql.Identifier(f.column) for f in model._meta.concrete_fields
                ),
                table=sql.Identifier(model._meta.db_table),
                key=sql.Identifier(model._meta.pk.column),
            )
            .as_string()
        )
    return statement
