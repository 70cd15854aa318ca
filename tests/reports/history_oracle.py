"""Every dated figure recomputed independently, in plain SQL over the cards and their audit
events, with none of the product's report code: the yardstick of test_history.py.

A card's field at an instant T (the state just before T) is the `old` of its earliest change at
or after T, else the value the card has now (or had when deleted). Deleted cards come from their
`deleted` event, their earlier changes from the unlinked events with their serial. A `delivered`
event is a change of the dormant flag from true to false.
"""

import datetime as dt
from collections import defaultdict
from decimal import Decimal

from django.db import connection

D = Decimal


def _j(column: str, key: str) -> str:
    if connection.vendor == "sqlite":
        return f"json_extract({column}, '$.{key}')"
    return f"({column} ->> '{key}')"


def _ts(expression: str) -> str:
    """An instant from a column or JSON text, comparable with `_param` on either database."""
    if connection.vendor == "sqlite":
        return f"strftime('%%Y-%%m-%%d %%H:%%M:%%S', {expression})"
    return f"CAST({expression} AS timestamptz)"


def _param(instant: dt.datetime):
    if connection.vendor == "sqlite":
        return instant.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return instant


def _true(expression: str) -> str:
    return (
        f"({expression} IN ('true', '1', 1))"
        if connection.vendor == "sqlite"
        else (f"(CAST({expression} AS text) = 'true')")
    )


def _cards_cte() -> str:
    serial = "c.series || '-' || substr('000000000' || c.number, -9, 9)"
    if connection.vendor == "postgresql":
        serial = "c.series || '-' || lpad(c.number::text, 9, '0')"
    deleted_flag = _true(_j("e.changes", "blocked"))
    deleted_dormant = f"COALESCE({_true(_j('e.changes', 'dormant'))}, {_false()})"
    return f"""
    cards_all AS (
        SELECT 'c' || c.id AS ident, c.id AS card_id, NULL AS deletion_id, {serial} AS serial,
               c.amount AS amount, c.currency AS currency, c.reseller_id AS reseller_id,
               {_ts("c.expires_at")} AS expires_at, c.blocked AS blocked,
               {_ts("c.created_at")} AS created_at, {_ts("c.activated_at")} AS activated_at,
               {_ts("c.reversed_at")} AS reversed_at, NULL AS deleted_at, c.dormant AS dormant
        FROM cards_topupcard c
        UNION ALL
        SELECT 'd' || e.id, NULL, e.id, e.serial,
               CAST({_j("e.changes", "amount")} AS numeric), {_j("e.changes", "currency")},
               CAST({_j("e.changes", "reseller")} AS bigint),
               {_ts(_j("e.changes", "expires_at"))}, {deleted_flag},
               {_ts(_j("e.changes", "created_at"))}, NULL, NULL, {_ts("e.created_at")},
               {deleted_dormant}
        FROM cards_cardevent e WHERE e.kind = 'deleted'
    ),
    ev AS (
        SELECT x.ident, e.id, {_ts("e.created_at")} AS at,
               CASE WHEN e.kind = 'edited' THEN {_j("e.changes", "field")}
                    WHEN e.kind = 'delivered' THEN 'dormant' ELSE 'blocked' END AS field,
               CASE WHEN e.kind = 'blocked' THEN 'false' WHEN e.kind = 'unblocked' THEN 'true'
                    WHEN e.kind = 'delivered' THEN 'true'
                    ELSE CAST({_j("e.changes", "old")} AS text) END AS old,
               CAST({_j("e.changes", "new")} AS text) AS new
        FROM cards_cardevent e JOIN cards_all x
          ON (e.card_id = x.card_id)
          OR (e.card_id IS NULL AND x.deletion_id IS NOT NULL AND e.serial = x.serial
              AND {_ts("e.created_at")} <= x.deleted_at)
        WHERE e.kind IN ('edited', 'blocked', 'unblocked', 'delivered')
    )
    """


def _first_old(field: str, after: str) -> str:
    """The `old` of the card's earliest change of `field` matching `after` (SQL over ev `f`)."""
    return (
        f"(SELECT f.old FROM ev f WHERE f.ident = x.ident AND f.field = '{field}' AND {after} "
        "ORDER BY f.at, f.id LIMIT 1)"
    )


def _has(field: str, after: str) -> str:
    return (
        f"EXISTS (SELECT 1 FROM ev f WHERE f.ident = x.ident AND f.field = '{field}' AND {after})"
    )


def _at(instant: str, field: str, current: str, cast=lambda s: s, strictly_after_id=None) -> str:
    """The card's `field` just before `instant` (or, with `strictly_after_id`, just after the
    event of that id at that instant)."""
    after = f"f.at >= {instant}"
    if strictly_after_id is not None:
        after = f"(f.at > {instant} OR (f.at = {instant} AND f.id > {strictly_after_id}))"
    return (
        f"CASE WHEN {_has(field, after)} THEN {cast(_first_old(field, after))} ELSE {current} END"
    )


def _expiry_at(instant: str, **kwargs) -> str:
    return _at(instant, "expires_at", "x.expires_at", cast=_ts, **kwargs)


def _reseller_at(instant: str, **kwargs) -> str:
    return _at(
        instant, "reseller", "x.reseller_id", cast=lambda s: f"CAST({s} AS bigint)", **kwargs
    )


def _flag_at(instant: str) -> str:
    after = f"f.at >= {instant}"
    return (
        f"CASE WHEN {_has('blocked', after)} THEN {_true(_first_old('blocked', after))} "
        f"WHEN x.reversed_at >= {instant} THEN (1 = 0) ELSE {_true('x.blocked')} END"
        if connection.vendor == "sqlite"
        else f"CASE WHEN {_has('blocked', after)} THEN {_true(_first_old('blocked', after))} "
        f"WHEN x.reversed_at >= {instant} THEN false ELSE x.blocked END"
    )


def _false() -> str:
    return "(1 = 0)" if connection.vendor == "sqlite" else "false"


def _dormant_at(instant: str) -> str:
    """Dormant just before `instant`: delivered at or after it, else dormant now (or when
    deleted)."""
    after = f"f.at >= {instant}"
    now = _true("x.dormant") if connection.vendor == "sqlite" else "x.dormant"
    first = _true(_first_old("dormant", after))
    return f"(CASE WHEN {_has('dormant', after)} THEN {first} ELSE {now} END)"


def _rows(query: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


def _money(value) -> Decimal:
    return D(str(value)).quantize(D("0.01")) if value is not None else D("0.00")


def liability(as_of: dt.datetime) -> dict[tuple, tuple[int, Decimal, Decimal, Decimal]]:
    """(currency, reseller id) → (cards, face value, of which blocked, of which dormant) owed
    just before `as_of`."""
    T = "%(t)s"
    flag = _flag_at(T)
    if connection.vendor == "sqlite":
        flag = f"({flag})"
    query = f"""
    WITH {_cards_cte()},
    owed AS (
        SELECT x.currency, {_reseller_at(T)} AS reseller, x.amount,
               {_expiry_at(T)} AS expiry, {flag} AS flag, x.created_at, x.deleted_at,
               x.activated_at, x.reversed_at, {_dormant_at(T)} AS dormant
        FROM cards_all x
    )
    SELECT currency, reseller, COUNT(*), SUM(amount),
           SUM(CASE WHEN flag THEN amount ELSE 0 END),
           SUM(CASE WHEN dormant THEN amount ELSE 0 END)
    FROM owed
    WHERE (created_at IS NULL OR created_at < {T})
      AND (deleted_at IS NULL OR deleted_at >= {T})
      AND NOT (activated_at IS NOT NULL AND activated_at < {T}
               AND (reversed_at IS NULL OR reversed_at >= {T}))
      AND expiry >= {T}
    GROUP BY currency, reseller
    """
    rows = _rows(query, {"t": _param(as_of)})
    return {(c, r): (n, _money(v), _money(b), _money(d)) for c, r, n, v, b, d in rows}


def movements(start: dt.datetime, end: dt.datetime) -> dict[tuple, Decimal]:
    """(kind, currency, reseller id) → signed face value of the movements in [start, end)."""
    S, E = "%(s)s", "%(e)s"
    params = {"s": _param(start), "e": _param(end)}
    result: dict[tuple, Decimal] = defaultdict(D)

    def add(kind, query):
        for currency, reseller, value in _rows(f"WITH {_cards_cte()} {query}", params):
            result[(kind, currency, reseller)] += _money(value)

    add(
        "issued",
        f"""SELECT x.currency, {_reseller_at("x.created_at")}, SUM(x.amount) FROM cards_all x
        WHERE x.created_at >= {S} AND x.created_at < {E} GROUP BY 1, 2""",
    )
    add(
        "redeemed",
        f"""SELECT x.currency, {_reseller_at("x.activated_at")}, -SUM(x.amount) FROM cards_all x
        WHERE x.activated_at >= {S} AND x.activated_at < {E} GROUP BY 1, 2""",
    )
    add(
        "reversed",
        f"""SELECT x.currency, x.reseller_id, SUM(x.amount) FROM cards_all x
        WHERE x.reversed_at >= {S} AND x.reversed_at < {E} GROUP BY 1, 2""",
    )
    add(
        "deleted",
        f"""SELECT x.currency, x.reseller_id, -SUM(x.amount) FROM cards_all x
        WHERE x.deleted_at >= {S} AND x.deleted_at < {E} AND x.expires_at > x.deleted_at
          AND (x.created_at IS NULL OR x.created_at < x.deleted_at) GROUP BY 1, 2""",
    )
    expiry_events = f"""FROM ev k JOIN cards_all x ON x.ident = k.ident
        WHERE k.field = 'expires_at' AND k.at >= {S} AND k.at < {E}"""
    add(
        "written_off",
        f"""SELECT x.currency, {_reseller_at("k.at")}, -SUM(x.amount) {expiry_events}
        AND {_ts("k.old")} > k.at AND {_ts("k.new")} <= k.at GROUP BY 1, 2""",
    )
    add(
        "reinstated",
        f"""SELECT x.currency, {_reseller_at("k.at")}, SUM(x.amount) {expiry_events}
        AND {_ts("k.old")} <= k.at AND {_ts("k.new")} > k.at GROUP BY 1, 2""",
    )
    # A move between resellers while owed: the expiry just after the event (a Mass Edit's
    # earlier change of the same instant included) is still ahead.
    moved = f"""FROM ev k JOIN cards_all x ON x.ident = k.ident
        WHERE k.field = 'reseller' AND k.at >= {S} AND k.at < {E}
          AND {_expiry_at("k.at", strictly_after_id="k.id")} > k.at
          AND CAST(k.old AS bigint) IS NOT CAST(k.new AS bigint)"""
    if connection.vendor == "postgresql":
        moved = moved.replace(" IS NOT ", " IS DISTINCT FROM ")
    add("moved", f"SELECT x.currency, CAST(k.old AS bigint), -SUM(x.amount) {moved} GROUP BY 1, 2")
    add("moved", f"SELECT x.currency, CAST(k.new AS bigint), SUM(x.amount) {moved} GROUP BY 1, 2")
    # Breakage: each expiry a card had, while it had it (from the change that set it, or the
    # creation, to the change that replaced it, or the deletion), passing unredeemed; a
    # redemption reversed after the expiry is breakage at the reversal.
    intervals = f"""
    spans AS (
        SELECT k.ident, {_ts("k.old")} AS expiry,
               COALESCE((SELECT MAX(p.at) FROM ev p WHERE p.ident = k.ident
                         AND p.field = 'expires_at'
                         AND (p.at < k.at OR (p.at = k.at AND p.id < k.id))), x.created_at)
                   AS since, k.at AS until
        FROM ev k JOIN cards_all x ON x.ident = k.ident WHERE k.field = 'expires_at'
        UNION ALL
        SELECT x.ident, x.expires_at,
               COALESCE((SELECT MAX(p.at) FROM ev p WHERE p.ident = x.ident
                         AND p.field = 'expires_at'), x.created_at),
               x.deleted_at
        FROM cards_all x
    ),
    broken AS (
        SELECT s.ident, CASE WHEN x.reversed_at >= s.expiry THEN x.reversed_at ELSE s.expiry END
                   AS at
        FROM spans s JOIN cards_all x ON x.ident = s.ident
        WHERE (s.since IS NULL OR s.since < s.expiry)
          AND (s.until IS NULL OR s.expiry <= s.until)
          AND NOT (x.activated_at IS NOT NULL AND x.activated_at < s.expiry
                   AND x.reversed_at IS NULL)
    )"""
    with connection.cursor() as cursor:
        # Broken at its reversal: the reversal has just blocked it.
        flag = _flag_at("b.at")
        query = f"""WITH {_cards_cte()}, {intervals}
        SELECT x.currency, {_reseller_at("b.at")}, -SUM(x.amount),
               -SUM(CASE WHEN x.reversed_at = b.at THEN x.amount
                         WHEN ({flag}) THEN x.amount ELSE 0 END)
        FROM broken b JOIN cards_all x ON x.ident = b.ident
        WHERE b.at >= {S} AND b.at < {E} GROUP BY 1, 2"""
        cursor.execute(query, params)
        for currency, reseller, value, blocked in cursor.fetchall():
            result[("breakage", currency, reseller)] += _money(value)
            result[("breakage_blocked", currency, reseller)] += _money(blocked)
    return {key: value for key, value in result.items() if value}
