"""Reads of the client panel."""

from django.db import connection

from cards.sql.redemption import panel_subscriber_statement
from subscribers.models import Subscriber
from wallets.sql import hot_cursor


def panel_subscriber(user, *, permission: str) -> Subscriber | None:
    """The subscriber `user` logs in as, with `can`: whether the user holds `permission`
    ("app_label.codename") as user.has_perm answers it; None when not linked. One prepared
    statement: every panel request runs it, and a redemption's round trips are few
    (docs/panel.md)."""
    app_label, codename = permission.split(".", 1)
    params = {"user": user.pk, "app_label": app_label, "codename": codename}
    with hot_cursor() as cursor:
        cursor.execute(panel_subscriber_statement(), params)
        row = cursor.fetchone()
    if row is None:
        return None
    *values, held = row
    fields = Subscriber._meta.concrete_fields
    subscriber = Subscriber.from_db(
        connection.alias, [f.attname for f in fields], list(map(_to_python, fields, values))
    )
    subscriber.can = user.is_active and (user.is_superuser or bool(held))
    user._state.fields_cache["subscriber"] = subscriber
    return subscriber


def _to_python(field, value):
    """A column's value as the ORM would give it (SQLite returns dates as text)."""
    column = field.get_col(field.model._meta.db_table)
    for convert in connection.ops.get_db_converters(column) + column.get_db_converters(connection):
        value = convert(value, column, connection)
    return value
