"""Liability as of a date: the cards that could still be redeemed at the close of a day, counted
with their block, expiry and reseller as they were then, and the cards deleted since
(docs/reports.md, "Liability as of day D")."""

import datetime as dt
from decimal import Decimal

from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum
from psycopg import sql

from cards.events import Edited
from cards.models import CardEvent, CardEventKind, TopUpCard

from .audit import STATE_EVENT_KINDS, deleted_cards, state_changes_since
from .common import (
    CARD_GROUPINGS,
    SQLITE_INSTANT,
    card_filters,
    instant,
    merge,
    name_resellers,
    reseller_order,
)


def liability_cards(*, as_of: dt.datetime) -> QuerySet:
    """Cards that could still be redeemed just before the instant `as_of` (an end of day), among
    those whose block, expiry and reseller have not changed since: a card Mass Edit changed at or
    after `as_of` is counted by `changed_liability` instead."""
    return TopUpCard.objects.filter(
        Q(activated_at__isnull=True) | Q(activated_at__gte=as_of),
        Q(blocked=False) | Q(reversed_at__gte=as_of),
        ~Exists(state_changes_since(as_of).filter(card_id=OuterRef("pk"))),
        created_at__lt=as_of,
        expires_at__gte=as_of,
        # Not owed before its box is delivered (docs/cards.md); a card delivered since is
        # counted from its creation until the reports read `delivered` events (docs/reports.md).
        dormant=False,
    )


# The ORM twin of this statement is `liability_cards` (same rules, cards unchanged since `as_of`).
# It reads the events through the (kind, created_at) index `cardevent_kind_time`, only the
# changes since `as_of`, and then the cards by primary key. Its %s parameters, in order: `as_of`
# four times, the dialect's (see `_dialect`), then the filters' values.
_CHANGED = sql.SQL(
    """
WITH changes AS (
    SELECT e.card_id, e.kind, {old} AS old, {field} AS field,
           ROW_NUMBER() OVER (PARTITION BY e.card_id, {field} ORDER BY e.created_at, e.id) AS n
    FROM {events} e
    WHERE e.kind IN ({kinds}) AND e.created_at >= %s AND e.card_id IS NOT NULL
),
earliest AS (
    SELECT card_id,
           MAX(CASE WHEN field = {blocked} THEN CASE WHEN kind = {unblocked} THEN 1 ELSE 0 END END)
               AS blocked_then,
           MAX(CASE WHEN field = {expires_at} THEN old END) AS expires_then,
           MAX(CASE WHEN field = {reseller} THEN COALESCE(old, '-') END) AS reseller_then
    FROM changes WHERE n = 1 GROUP BY card_id
),
dated AS (
    SELECT c.id, c.amount, c.currency, c.series,
           CASE WHEN s.reseller_then IS NULL THEN c.reseller_id
                WHEN s.reseller_then = '-' THEN NULL
                ELSE CAST(s.reseller_then AS bigint) END AS reseller_id
    FROM earliest s JOIN {cards} c ON c.id = s.card_id
    WHERE c.created_at < %s AND (c.activated_at IS NULL OR c.activated_at >= %s)
      AND NOT c.dormant
      AND (COALESCE(s.blocked_then, CASE WHEN c.blocked THEN 1 ELSE 0 END) = 0
           OR c.reversed_at >= %s)
      AND {expires_then} >= {as_of}
)
SELECT {keys}, COUNT(*), SUM(amount) FROM dated WHERE {where} GROUP BY {keys}
"""
)


def _dialect(vendor: str, as_of) -> tuple[dict[str, sql.Composable], list]:
    """The fragments that differ by database, and their parameters: a JSON key's text (NULL for
    a JSON null), and an instant from a column or from JSON text."""
    if vendor == "sqlite":
        return {
            "old": sql.SQL("json_extract(e.changes, {})").format(sql.Literal(f"$.{Edited.OLD}")),
            "json_field": sql.SQL("json_extract(e.changes, {})").format(
                sql.Literal(f"$.{Edited.FIELD}")
            ),
            # As `Instant`: both sides as UTC text to the millisecond, whichever form they had.
            "expires_then": sql.SQL("strftime(%s, COALESCE(s.expires_then, c.expires_at))"),
            "as_of": sql.SQL("strftime(%s, %s)"),
        }, [SQLITE_INSTANT, SQLITE_INSTANT, as_of]
    return {
        "old": sql.SQL("e.changes ->> {}").format(sql.Literal(Edited.OLD)),
        "json_field": sql.SQL("e.changes ->> {}").format(sql.Literal(Edited.FIELD)),
        "expires_then": sql.SQL("COALESCE(CAST(s.expires_then AS timestamptz), c.expires_at)"),
        "as_of": sql.SQL("%s"),
    }, [as_of]


def changed_liability(
    *,
    as_of: dt.datetime,
    keys: tuple[str, ...],
    reseller_id: int | None = None,
    currency: str = "",
    series: str = "",
) -> list[dict]:
    """Count and face value by `keys` of the cards Mass Edit changed (block, expiry or reseller)
    at or after `as_of`, read as they were just before it, by the rules of `liability_cards`.

    A field's value at `as_of` is the `old` value of the card's earliest change of that field at
    or after `as_of` (a row number over the changes since `as_of`, per card and field); a field
    not changed since is read from the card. The flag before a blocked event was false and before
    an unblocked one true (Mass Edit writes one only when the flag flips), so the kind says it. A
    reseller may have been none (a JSON null), which is not "unchanged". The reseller filter
    (a scoped user's too) applies to the reseller at `as_of`.

    One statement, set-based (window, GROUP BY per card, join to the cards by primary key,
    GROUP BY): the ORM cannot group the per-card rows again, and correlated subqueries per card
    cost twice as much on the benchmark's data (bench/reports.py).
    """
    when = connection.ops.adapt_datetimefield_value(as_of)
    fragments, dialect_params = _dialect(connection.vendor, when)
    # Block events carry no field name of their own that liability could rely on: the kind is it.
    field = sql.SQL("CASE WHEN e.kind = {edited} THEN {json_field} ELSE {blocked} END").format(
        edited=sql.Literal(CardEventKind.EDITED.value),
        json_field=fragments["json_field"],
        blocked=sql.Literal(Edited.BLOCKED),
    )
    filters = [
        (column, value)
        for column, value in (
            ("reseller_id", reseller_id),
            ("currency", currency),
            ("series", series),
        )
        if value not in (None, "")
    ]
    where = sql.SQL(" AND ").join(
        [sql.SQL("1 = 1")] + [sql.SQL("{} = %s").format(sql.Identifier(c)) for c, _ in filters]
    )
    columns = sql.SQL(", ").join(sql.Identifier(key) for key in keys)
    query = _CHANGED.format(
        old=fragments["old"],
        field=field,
        events=sql.Identifier(CardEvent._meta.db_table),
        kinds=sql.SQL(", ").join(sql.Literal(kind.value) for kind in STATE_EVENT_KINDS),
        blocked=sql.Literal(Edited.BLOCKED),
        unblocked=sql.Literal(CardEventKind.UNBLOCKED.value),
        expires_at=sql.Literal(Edited.EXPIRES_AT),
        reseller=sql.Literal(Edited.RESELLER),
        cards=sql.Identifier(TopUpCard._meta.db_table),
        expires_then=fragments["expires_then"],
        as_of=fragments["as_of"],
        keys=columns,
        where=where,
    )
    params = [when, when, when, when, *dialect_params, *(value for _, value in filters)]
    with connection.cursor() as cursor:
        # SQLite has no psycopg connection: its quoting of identifiers and literals is the same.
        context = connection.connection if connection.vendor == "postgresql" else None
        cursor.execute(query.as_string(context), params)
        return [
            {
                **dict(zip(keys, row[: len(keys)], strict=True)),
                "count": row[-2],
                "value": _money(row[-1]),
            }
            for row in cursor.fetchall()
        ]


def _money(value) -> Decimal:
    """A sum of amounts as a Decimal: SQLite's SUM answers a float (or an int) outside the ORM;
    quantized to the amount's places, as the ORM's own converter does."""
    if isinstance(value, Decimal):
        return value
    places = TopUpCard._meta.get_field("amount").decimal_places
    return Decimal(str(value)).quantize(Decimal(1).scaleb(-places))


def deleted_liability(*, as_of: dt.datetime) -> QuerySet:
    """Deleted cards that could still be redeemed just before `as_of`, by the rules of
    `liability_cards`: deleted at or after the instant (a deletion at midnight exactly belongs to
    D + 1), created before it (or at an unknown time), not expired before it and not blocked when
    deleted. They were never redeemed (only such cards can be deleted). The deletion time is the
    event's own `created_at`, indexed with its kind, so only the deletions since `as_of` are read.
    """
    return deleted_cards().filter(
        Q(card_created_at__lt=instant(as_of)) | Q(card_created_at__isnull=True),
        created_at__gte=as_of,
        expires_at__gte=instant(as_of),
        blocked=False,
    )


def liability(
    *,
    as_of: dt.datetime,
    group_by: str = "reseller",
    reseller_id: int | None = None,
    currency: str = "",
    series: str = "",
) -> list[dict]:
    """Count and face value of redeemable cards at `as_of`, by currency (+ reseller, + series):
    three aggregates (unchanged cards, cards changed since, deleted cards) merged by group key."""
    keys = CARD_GROUPINGS[group_by]
    aggregates = {"count": Count("id"), "value": Sum("amount")}
    queryset = card_filters(
        liability_cards(as_of=as_of), reseller_id=reseller_id, currency=currency, series=series
    )
    rows = list(queryset.order_by().values(*keys).annotate(**aggregates))
    # The changed cards count for the reseller they had at `as_of` (so does a scoped user's view).
    changed_rows = changed_liability(
        as_of=as_of, keys=keys, reseller_id=reseller_id, currency=currency, series=series
    )
    deleted = card_filters(
        deleted_liability(as_of=as_of), reseller_id=reseller_id, currency=currency, series=series
    )
    more = list(deleted.order_by().values(*keys).annotate(**aggregates))
    rows = merge(rows, changed_rows, keys, tuple(aggregates))
    rows = name_resellers(merge(rows, more, keys, tuple(aggregates)))
    rows.sort(
        key=lambda r: (
            r["currency"],
            reseller_order(r) if "reseller_id" in keys else (False, ""),
            r.get("series", ""),
        )
    )
    return rows
