"""The raw SQL of Mass Edit, Delete all and deliveries over a whole selection of cards: the rows
locked once (PostgreSQL), a job's confirmed selection written once, one audit event per card.

Raw SQL because the ORM does none of these without loading every card into Python: it has no
SELECT … FOR UPDATE into a temporary table and no INSERT … SELECT of a queryset. Each statement
stands in for the ORM path named beside it, which is the reference.
"""

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import BigIntegerField, CharField, DateTimeField, F, QuerySet, Value
from django.db.models.expressions import RawSQL
from django.utils import timezone
from psycopg import sql

from cards import events
from cards.models import CardEvent, CardJobCard, TopUpCard
from cards.models.formats import serial_expression
from wallets.models import Channel

# --- Mass Edit / Delete all: the locked selection (PostgreSQL) ----------------------------------
# Stands in for running every statement of the edit on the search's queryset, which is enough
# on SQLite (the first write holds the database's write lock until the commit, so no card can be
# added between the edit's statements). Here another transaction can commit a card the search
# matches meanwhile, and it would be changed or deleted without its audit event, or get only
# some of the fields: so the rows are locked once, in primary-key order (deadlock-free), and
# their ids kept in a temporary table until the transaction ends. The later statements join it
# to the cards' primary key; the search itself runs once, on its own indexes (cards.filters).

_LOCKED_TABLE = sql.Identifier("topup_locked_cards")
_LOCKED_IDS = sql.SQL("SELECT id FROM {locked}").format(locked=_LOCKED_TABLE).as_string()


def lock_selection(cards: QuerySet) -> tuple[QuerySet, int]:
    """Lock the cards `cards` selects without loading them; the locked cards and their number."""
    try:
        select, params = cards.order_by("pk").values("pk").query.sql_with_params()
    except EmptyResultSet:  # a selection empty by construction (`pk__in=[]`, `.none()`)
        return cards.none(), 0
    create = sql.SQL(
        "CREATE TEMPORARY TABLE {locked} ON COMMIT DROP AS "
        "SELECT pk AS id FROM ({select} FOR UPDATE) AS locked"
    ).format(locked=_LOCKED_TABLE, select=sql.SQL(select))
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(_LOCKED_TABLE).as_string())
        cursor.execute(create.as_string(), params)
        count = cursor.rowcount
        # Row counts for the planner: a hash join for a large selection, not a loop per id.
        cursor.execute(sql.SQL("ANALYZE {}").format(_LOCKED_TABLE).as_string())
    locked = TopUpCard.objects.filter(pk__in=RawSQL(_LOCKED_IDS, ()))  # noqa: S611
    return locked.order_by(), count


# --- Mass Edit / Delete all jobs: the confirmed selection, written once (every database) --------
# Stands in for one `CardJobCard` per card (bulk_create): INSERT … SELECT of the search, so a
# million ids never pass through Python. One statement, one snapshot of the table: the count it
# returns is exactly the rows written, which the job compares with the count the operator saw.


def snapshot_selection(cards: QuerySet, *, job_id: int) -> int:
    """Write the id of each card `cards` selects as still to do for job `job_id`; how many."""
    rows = (
        cards.order_by()
        .annotate(snapshot_job=Value(job_id, output_field=BigIntegerField()))
        .values_list("snapshot_job", "pk")
    )
    try:
        select, params = rows.query.sql_with_params()
    except EmptyResultSet:
        return 0
    statement = sql.SQL("INSERT INTO {table} ({columns}) {select}").format(
        table=sql.Identifier(CardJobCard._meta.db_table),
        columns=sql.SQL(", ").join(map(sql.Identifier, ("job_id", "card_id"))),
        select=sql.SQL(select),
    )
    with connection.cursor() as cursor:
        cursor.execute(statement.as_string(), params)
        return cursor.rowcount


# --- Mass Edit / Delete all: one audit event per card (every database) ------------------------
# Stands in for one `CardEvent.objects.create` per card (cards.events): INSERT … SELECT over the
# selection, so no card passes through Python. The kind and payload come from cards.events; the
# selection is the locked one above (its primary key) or, on SQLite, the search's queryset.

_EVENT_COLUMNS = (
    "kind",
    "card_id",
    "serial",
    "batch_id",
    "actor_id",
    "channel",
    "changes",
    "created_at",
)


def insert_card_events(cards: QuerySet, *, event: events.EachCardEvent, actor) -> int:
    """`event` for each card `cards` selects, by `actor` in the admin; how many were written."""
    rows = cards.annotate(
        ev_kind=Value(event.kind, output_field=CharField()),
        ev_card=F("pk") if event.linked else Value(None, output_field=BigIntegerField()),
        ev_serial=serial_expression(),
        ev_batch=F("batch_id"),
        ev_actor=Value(getattr(actor, "pk", None), output_field=BigIntegerField()),
        ev_channel=Value(Channel.ADMIN, output_field=CharField()),
        ev_changes=event.changes,
        ev_created=Value(timezone.now(), output_field=DateTimeField()),
    ).values_list(
        "ev_kind",
        "ev_card",
        "ev_serial",
        "ev_batch",
        "ev_actor",
        "ev_channel",
        "ev_changes",
        "ev_created",
    )
    select, params = rows.query.sql_with_params()
    statement = sql.SQL("INSERT INTO {table} ({columns}) {select}").format(
        table=sql.Identifier(CardEvent._meta.db_table),
        columns=sql.SQL(", ").join(map(sql.Identifier, _EVENT_COLUMNS)),
        select=sql.SQL(select),
    )
    with connection.cursor() as cursor:
        cursor.execute(statement.as_string(), params)
        return cursor.rowcount
