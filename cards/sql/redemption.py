"""The redemption statements: the REST card top-up in one statement and the panel's redemption
in two (PostgreSQL), the panel's subscriber with its right to redeem (every database), and what
every redemption path shares on PostgreSQL: the lockout's advisory locks and how long a
redemption waits for a lock.

Raw SQL for round trips: a person or a partner waits for a redemption, and its common cases take
one prepared statement (REST) or two (panel) where the panel's ORM path took about 25 round trips
("Speed on PostgreSQL" in docs/panel.md and docs/rest-api.md). That path (card_redeem, in
cards.services.redemption and .topup) is the reference: a statement changes nothing in a case it
does not handle and leaves it to that path. The prepared statements are composed and compacted
once (wallets.sql.compact): psycopg prepares a statement by its text, which must not change
between requests.
"""

import functools
from collections.abc import Iterable

import psycopg.errors
from django.db import connection
from psycopg import sql

from cards import events, lockout
from cards.models import CardEvent, TopUpCard
from cards.models.events import CardEventKind
from cards.models.formats import SERIAL_NUMBER_DIGITS
from subscribers.models import AccessNumber, Subscriber, Subscription
from wallets.models import Balance, BalanceEvent, BalanceTemplate, Channel, LedgerEntry, Wallet
from wallets.sql import compact

# --- REST card top-up in one statement (PostgreSQL) -------------------------------------------
# Stands in for the common case of `card_topup` → `card_redeem` (cards.services.topup and
# .redemption): a new, valid card onto a live simple or virtual balance of a subscription, no
# EndTime. The same locks in the same order (subscriber, card, balance), the same checks, the
# same rows written (card activated, balance credited, ledger entry, balance event, card event).
# Anything else (a failure to classify and audit, a replay, a periodic balance, an EndTime) makes
# the statement change nothing and return no row, and the caller takes the ORM path, which finds
# the exact Result and records the failure. Rows are locked with FOR UPDATE before they are
# checked, so every check sees the row as it is under the lock (READ COMMITTED re-reads a row
# that changed). Indexes: the balance by (wallet, resource_id), the subscription by the ref's
# unique column, the failed redemptions by the partial index cardevent_fail_actor, the card by
# its unique pin_digest.

REF_CONDITIONS = {
    "wallet__subscription__external_id": sql.SQL("s.external_id = %(ref)s"),
    "wallet__subscription__access_numbers__number": sql.SQL(
        "s.id = (SELECT a.subscription_id FROM {access_number} a WHERE a.number = %(ref)s)"
    ).format(access_number=sql.Identifier(AccessNumber._meta.db_table)),
    "wallet__subscription_id": sql.SQL("s.id = %(ref)s"),
}
_TOPUP = sql.SQL("""
WITH {caller} target AS (
    SELECT b.id AS balance_id, sub.id AS subscriber_id, sub.reseller_id, t.currency
    FROM {balance} b
    JOIN {template} t ON t.id = b.template_id
    JOIN {wallet} w ON w.id = b.wallet_id
    JOIN {subscription} s ON s.id = w.subscription_id
    JOIN {subscriber} sub ON sub.id = s.subscriber_id
    -- Whether the caller may act first (topup_statement): otherwise nothing is locked.
    -- set_config next: every lock below waits at most this long (docs/rest-api.md, Result 1).
    WHERE {allowed} AND set_config('lock_timeout', %(lock_timeout)s, true) IS NOT NULL
      AND b.resource_id = %(resource_id)s AND {ref_condition}
      AND t.kind NOT IN ('periodic', 'meter') AND t.precision >= %(places)s
    -- SKIP LOCKED: while card_redeem holds the subscriber (an attempt being checked and
    -- recorded), this statement's snapshot may predate that attempt's failure; the request is
    -- left to card_redeem, which waits and then counts what was committed.
    FOR UPDATE OF sub SKIP LOCKED
), unlocked AS (
    -- Fewer counted failures (guesses) than a lock needs, of this API client as a whole and
    -- of this API client for this end subscriber, since the earliest moment a lock in force
    -- could have started: no lock (cards.lockout decides every other case). One scan of the
    -- client's failures counts both: while it stops short of its LIMIT it saw all of them, so
    -- the subscriber's count is exact; when it reaches it, the client's count alone refuses.
    -- The shared try-lock stands aside while card_redeem holds the API client's count
    -- (exclusively, from its check to its recorded failure): such a request is left to
    -- card_redeem, which waits for it.
    SELECT target.* FROM target, LATERAL (
        SELECT count(*) AS client,
               count(*) FILTER (WHERE failures.subscriber_id = target.subscriber_id) AS own
        FROM (
            SELECT e.subscriber_id FROM {card_event} e
            WHERE e.kind = {redeem_failed} AND e.actor_id = {actor} AND e.channel = %(channel)s
              AND e.created_at > %(since)s AND (e.changes ->> {reason}) = ANY({guesses})
            LIMIT %(client_needed)s
        ) failures
    ) counted
    WHERE counted.client < %(client_needed)s AND counted.own < %(needed)s
    -- cards.lockout.client_lock_key, in SQL.
    AND pg_try_advisory_xact_lock_shared({client_lock_base} + {actor})
), newest AS (
    -- The card card_find_by_pin picks (the newest, should two keys' digests both match).
    SELECT c.id FROM {card} c, unlocked
    WHERE c.pin_digest = ANY(%(digests)s)
    ORDER BY c.created_at DESC, c.id DESC
    LIMIT 1
), card AS (
    -- SKIP LOCKED: a card another request holds (the same card sent twice at once) is left to
    -- card_redeem, which waits for it and answers the exact Result, as without this statement.
    SELECT c.id, c.amount, c.currency, c.reseller_id, c.activated_at, c.blocked, c.dormant,
           c.expires_at,
           c.series || '-' || lpad(c.number::text, {serial_digits}, '0') AS serial
    FROM {card} c, newest
    WHERE c.id = newest.id
    FOR UPDATE OF c SKIP LOCKED
), go AS (
    SELECT b.id AS balance_id, card.id AS card_id, card.amount, card.currency, card.serial,
           unlocked.subscriber_id,
           nextval(pg_get_serial_sequence({ledger_entry_name}, 'id')) AS entry_id
    FROM {balance} b, unlocked, card
    WHERE b.id = unlocked.balance_id
      AND card.activated_at IS NULL AND NOT card.blocked AND card.expires_at > %(now)s
      -- A dormant card (box not delivered) is left to card_redeem, which answers its Result.
      AND NOT card.dormant
      AND (card.reseller_id IS NULL OR card.reseller_id = unlocked.reseller_id)
      AND card.currency = unlocked.currency AND card.amount = %(amount)s
      AND b.start_time <= %(now)s AND (b.end_time IS NULL OR b.end_time > %(now)s)
      AND b.amount + card.amount < %(amount_limit)s
    FOR UPDATE OF b
), {writes}
)
{result}
""")


# The writes of a redemption, the same in the REST and the panel statements: the card
# activated, the balance credited, its ledger entry, the balance event and the card event
# (`go` is the one row each statement has checked and locked).
_WRITES = sql.SQL("""activated AS (
    UPDATE {card} c
    SET activated_at = %(now)s, activated_by_id = go.subscriber_id, ledger_entry_id = go.entry_id
    FROM go WHERE c.id = go.card_id
    RETURNING c.id
), credit AS (
    UPDATE {balance} b SET amount = b.amount + go.amount
    FROM go WHERE b.id = go.balance_id
    RETURNING b.id, b.amount
), entry AS (
    INSERT INTO {ledger_entry}
        (id, balance_id, interval_id, amount, kind, channel, voucher, reason, actor_id,
         request_id, reverses_id, created_at)
    SELECT go.entry_id, go.balance_id, NULL, go.amount, 'redemption', %(channel)s, go.serial, '',
           {actor}, {request_id}, NULL, %(now)s
    FROM go
    RETURNING id
), balance_event AS (
    INSERT INTO {balance_event}
        (balance_id, kind, channel, actor_id, ledger_entry_id, changes, reason, request_id,
         created_at)
    SELECT credit.id, 'redemption', %(channel)s, {actor}, entry.id,
           jsonb_build_object('amount', jsonb_build_array(
               (credit.amount - go.amount)::text, credit.amount::text)),
           '', {request_id}, %(now)s
    FROM credit, go, entry
), card_event AS (
    INSERT INTO {card_event}
        (kind, card_id, serial, batch_id, actor_id, subscriber_id, channel, ip_address, changes,
         created_at)
    SELECT {redeemed}, activated.id, go.serial, NULL, {actor}, go.subscriber_id, %(channel)s,
           NULL, {redeemed_changes}, %(now)s
    FROM activated, go
""")


def _redemption_names() -> dict:
    """The tables and values both redemption statements (REST's and the panel's) name."""
    return dict(
        balance=sql.Identifier(Balance._meta.db_table),
        template=sql.Identifier(BalanceTemplate._meta.db_table),
        wallet=sql.Identifier(Wallet._meta.db_table),
        subscription=sql.Identifier(Subscription._meta.db_table),
        subscriber=sql.Identifier(Subscriber._meta.db_table),
        card=sql.Identifier(TopUpCard._meta.db_table),
        card_event=sql.Identifier(CardEvent._meta.db_table),
        ledger_entry=sql.Identifier(LedgerEntry._meta.db_table),
        ledger_entry_name=sql.Literal(LedgerEntry._meta.db_table),
        balance_event=sql.Identifier(BalanceEvent._meta.db_table),
        redeem_failed=sql.Literal(CardEventKind.REDEEM_FAILED.value),
        reason=sql.Literal(events.RedeemFailed.REASON),
        # A constant: in the text, the statement has one array parameter fewer to send.
        guesses=sql.SQL("ARRAY[{}]").format(
            sql.SQL(", ").join(sql.Literal(code) for code in events.RedeemFailed.GUESSES)
        ),
        serial_digits=sql.Literal(SERIAL_NUMBER_DIGITS),
        redeemed=sql.Literal(CardEventKind.REDEEMED.value),
        redeemed_changes=events.redeemed_jsonb(
            balance=sql.SQL("go.balance_id"),
            amount=sql.SQL("go.amount"),
            currency=sql.SQL("go.currency"),
        ),
    )


@functools.cache
def topup_statement(lookup: str, caller: tuple[str, str] | None = None) -> str:
    """The statement for a balance named by `lookup` (a key of REF_CONDITIONS), composed once:
    psycopg prepares a statement by its text, which must be the same on every request.

    The actor is the %(actor)s parameter; with `caller`, the REST API's own lookup of who calls
    (rsgateway.credentials) in the same statement: (CTEs that end in one named `caller`, with
    one row, column actor_id, only when that caller may make this request; the statement's last
    SELECT, which may read `entry`). Without that row nothing is locked or written."""
    names = _redemption_names()
    if caller is None:
        actor, allowed, before, result = "%(actor)s", "true", "", "SELECT entry.id FROM entry"
    else:
        actor, allowed = "(SELECT caller.actor_id FROM caller)", "EXISTS (SELECT FROM caller)"
        before, result = f"{caller[0]},", caller[1]
    names["actor"] = sql.SQL(actor)
    writes = _WRITES.format(request_id=sql.SQL("%(request_id)s"), **names)
    return compact(
        _TOPUP.format(
            ref_condition=REF_CONDITIONS[lookup],
            writes=writes,
            caller=sql.SQL(before),
            allowed=sql.SQL(allowed),
            client_lock_base=sql.Literal(lockout.CLIENT_LOCK_BASE),
            result=sql.SQL(result),
            **names,
        )
    )


# --- panel redemption in two statements (PostgreSQL) -------------------------------------------
# Stand in for `card_redeem` onto the subscriber's main balance in the panel's two commonest
# cases: a new, valid card onto a live simple or virtual balance (written as card_redeem writes
# it), and a code that matches no card (its `redeem_failed` event, as card_redeem records it).
# Every other case (a card that is used, blocked, expired, another provider's, in another
# currency; a replay; a periodic balance; a lock in force or near) changes nothing and returns no
# row, and the caller runs card_redeem, which finds the exact answer.
#
# In one transaction: PANEL_LOCKS takes card_redeem's locks in its order (the subscriber's row,
# then the client address's advisory lock), then PANEL_REDEEM reads the counts with a snapshot
# taken after those locks, so parallel attempts cannot count past a limit (docs/panel.md). The
# address lock is exclusive when no card has the code (the attempt will record a failure, and a
# count must not change between its check and its record) and shared otherwise (a success records
# nothing: it only waits for failures in flight). A redemption waits for the card and balance at
# most REDEMPTION_LOCK_TIMEOUT, set after the two locks, which only other attempts hold.

PANEL_LOCKS = compact(
    sql.SQL("""
-- (The lock functions return void: as text, '', which makes the branch's boolean.)
SELECT CASE WHEN EXISTS (SELECT FROM {card} c WHERE c.pin_digest = ANY(%(digests)s))
            THEN pg_advisory_xact_lock_shared(%(address_lock)s)::text IS NULL
            ELSE pg_advisory_xact_lock(%(address_lock)s)::text IS NOT NULL END,
       set_config('lock_timeout', %(lock_timeout)s, true),
       set_config('statement_timeout', %(statement_timeout)s, true),
       -- PANEL_REDEEM then runs its one generic plan. Left to choose, PostgreSQL kept planning it
       -- for each POST's parameters at 10M cards (2.3 ms planning, 0.9 ms running; generic:
       -- 0.7 ms running, planned once per connection).
       set_config('plan_cache_mode', 'force_generic_plan', true)
FROM (SELECT sub.id FROM {subscriber} sub WHERE sub.id = %(subscriber)s FOR UPDATE) locked
""").format(
        card=sql.Identifier(TopUpCard._meta.db_table),
        subscriber=sql.Identifier(Subscriber._meta.db_table),
    )
)
"""One row: whether the address lock is exclusive (a failure may be recorded under it)."""

_PANEL_SUBSCRIBER = sql.SQL("""
SELECT {columns},
       EXISTS (SELECT 1 FROM {user_permissions} up
               WHERE up.user_id = sub.user_id AND up.permission_id = p.id)
       OR EXISTS (SELECT 1 FROM {user_groups} ug
                  JOIN {group_permissions} gp ON gp.group_id = ug.group_id
                  WHERE ug.user_id = sub.user_id AND gp.permission_id = p.id)
FROM {subscriber} sub
LEFT JOIN ({permission} p JOIN {content_type} ct ON ct.id = p.content_type_id)
    ON ct.app_label = %(app_label)s AND p.codename = %(codename)s
WHERE sub.user_id = %(user)s
""")


@functools.cache
def panel_subscriber_statement() -> str:
    """The subscriber a login is linked to (its columns in `Subscriber._meta.concrete_fields`
    order), then whether the login holds the permission named by app_label and codename,
    directly or through a group. Every panel request runs it (panel.selectors), on every
    database (the ORM's version of it took longer to compile than to run)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group, Permission
    from django.contrib.contenttypes.models import ContentType

    user_model = get_user_model()
    statement = _PANEL_SUBSCRIBER.format(
        columns=sql.SQL(", ").join(
            sql.Identifier("sub", f.column) for f in Subscriber._meta.concrete_fields
        ),
        subscriber=sql.Identifier(Subscriber._meta.db_table),
        user_permissions=sql.Identifier(user_model.user_permissions.through._meta.db_table),
        user_groups=sql.Identifier(user_model.groups.through._meta.db_table),
        group_permissions=sql.Identifier(Group.permissions.through._meta.db_table),
        permission=sql.Identifier(Permission._meta.db_table),
        content_type=sql.Identifier(ContentType._meta.db_table),
    )
    return compact(statement)


_PANEL_REDEEM = sql.SQL("""
WITH target AS (
    -- The main balance subscriber_main_balance picks.
    SELECT b.id AS balance_id, sub.id AS subscriber_id, sub.reseller_id, t.currency, t.kind,
           t.precision
    FROM {subscriber} sub
    JOIN {subscription} s ON s.subscriber_id = sub.id
    JOIN {wallet} w ON w.subscription_id = s.id
    JOIN {balance} b ON b.wallet_id = w.id AND b.is_main
    JOIN {template} t ON t.id = b.template_id
    WHERE sub.id = %(subscriber)s
    ORDER BY w.id, b.resource_id
    LIMIT 1
), last_success AS (
    SELECT max(c.activated_at) AS at FROM {card} c
    WHERE c.activated_by_id = %(subscriber)s AND c.activated_at > %(since)s
), own AS (
    -- The subscriber's counted failures in the panel since the earliest moment a lock in force
    -- could have started, after its last success (cards.lockout.redemption_locked_until).
    SELECT count(*) AS failures FROM (
        SELECT 1 FROM {card_event} e, last_success
        WHERE e.kind = {redeem_failed} AND e.subscriber_id = %(subscriber)s
          AND e.channel <> {rest} AND (e.changes ->> {reason}) = ANY({guesses})
          AND e.created_at > greatest(%(since)s, coalesce(last_success.at, %(since)s))
        LIMIT %(needed)s
    ) failures
), shared AS (
    SELECT count(*) AS failures FROM (
        SELECT 1 FROM {card_event} e
        WHERE e.kind = {redeem_failed} AND e.ip_address BETWEEN %(ip_low)s AND %(ip_high)s
          AND e.channel <> {rest} AND (e.changes ->> {reason}) = ANY({guesses})
          AND e.created_at > %(since)s
        LIMIT %(address_needed)s
    ) failures
), unlocked AS (
    -- Fewer failures than a lock needs on the own key, and on the address when it applies to
    -- this subscriber (one failure of its own at least): no lock. Any other case is left to
    -- card_redeem (cards.lockout decides it exactly).
    SELECT target.* FROM target, own, shared
    WHERE own.failures < %(needed)s AND (own.failures = 0 OR shared.failures < %(address_needed)s)
), newest AS (
    -- The card card_find_by_pin picks (the newest, should two keys' digests both match).
    SELECT c.id FROM {card} c, unlocked
    WHERE c.pin_digest = ANY(%(digests)s)
    ORDER BY c.created_at DESC, c.id DESC
    LIMIT 1
), card AS (
    SELECT c.id, c.series, c.number, c.amount, c.currency, c.reseller_id, c.activated_at,
           c.blocked, c.dormant, c.expires_at,
           c.series || '-' || lpad(c.number::text, {serial_digits}, '0') AS serial
    FROM {card} c, newest
    WHERE c.id = newest.id
    FOR UPDATE OF c
), go AS (
    SELECT b.id AS balance_id, card.id AS card_id, card.series, card.number, card.amount,
           card.currency, card.serial, unlocked.subscriber_id, unlocked.precision,
           nextval(pg_get_serial_sequence({ledger_entry_name}, 'id')) AS entry_id
    FROM {balance} b, unlocked, card
    WHERE b.id = unlocked.balance_id
      AND card.activated_at IS NULL AND NOT card.blocked AND card.expires_at > %(now)s
      -- A dormant card (box not delivered) is left to card_redeem, which answers CardDormant.
      AND NOT card.dormant
      AND (card.reseller_id IS NULL OR card.reseller_id = unlocked.reseller_id)
      AND card.currency = unlocked.currency
      AND unlocked.kind NOT IN ('periodic', 'meter')
      AND scale(trim_scale(card.amount)) <= unlocked.precision
      AND b.start_time <= %(now)s AND (b.end_time IS NULL OR b.end_time > %(now)s)
      AND b.amount + card.amount < %(limit)s
    FOR UPDATE OF b
), {writes}
), failed AS (
    -- No card has the code: the failure card_redeem would record (card_redeem_failed_event),
    -- under the exclusive address lock only.
    INSERT INTO {card_event}
        (kind, card_id, serial, batch_id, actor_id, subscriber_id, channel, ip_address, changes,
         created_at)
    SELECT {redeem_failed}, NULL, '', NULL, %(actor)s, unlocked.subscriber_id, %(channel)s,
           %(ip)s, jsonb_build_object({reason}, %(not_found_reason)s::text), %(now)s
    FROM unlocked
    WHERE %(may_record)s AND NOT EXISTS (SELECT FROM newest)
    RETURNING changes ->> {reason} AS reason
)
SELECT NULL, go.card_id, go.series, go.number, go.amount, go.currency, credit.id, credit.amount,
       go.precision, entry.id
FROM go, credit, entry
UNION ALL
SELECT failed.reason, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM failed
""")


@functools.cache
def panel_redeem_statement() -> str:
    """PANEL_REDEEM, composed once (a prepared statement is known by its text). One row:
    (None, card id, series, number, amount, currency, balance id, new amount, precision, entry
    id) for a redemption, (reason, None…) for a recorded failure; no row: nothing written."""
    names = _redemption_names()
    names["actor"] = sql.SQL("%(actor)s")
    writes = _WRITES.format(request_id=sql.Literal(""), **names)  # a page has no request id
    return compact(
        _PANEL_REDEEM.format(rest=sql.Literal(Channel.REST.value), writes=writes, **names)
    )


# --- redemption lockout: one attempt at a time per shared key (PostgreSQL) ----------------------
# Stands in for nothing on SQLite, where the first write holds the database's write lock. Held
# until the transaction ends; taken in ascending order after the subscriber's row lock and
# before the card's, the order every redemption path follows (deadlock-free).
_ADVISORY_XACT_LOCK = "SELECT pg_advisory_xact_lock(%s)"


def advisory_xact_lock(keys: Iterable[int]) -> None:
    with connection.cursor() as cursor:
        for key in sorted(set(keys)):
            cursor.execute(_ADVISORY_XACT_LOCK, [key])


# --- how long a redemption waits (PostgreSQL) ---------------------------------------------------
# A person or a partner waits for a redemption; a background job (Mass Edit, Delete all) may hold
# the card's row for minutes. A lock not granted within REDEMPTION_LOCK_TIMEOUT ends the attempt
# with a retryable answer (RedemptionBusy: REST Result 1 / HTTP 503 with Retry-After, panel "try
# again in a moment", docs/rest-api.md) instead of holding the request past gunicorn's 30 s. Set
# with set_config(…, true): for the rest of the transaction only, and one statement, so the REST
# statement above carries it inside itself and stays one prepared round trip.
# Another redemption holds a card or balance for milliseconds; 0.3 s leaves most of the second
# the answer must come within for the request's own work on a loaded server.
REDEMPTION_LOCK_TIMEOUT = "300ms"
REDEMPTION_STATEMENT_TIMEOUT = "5s"
_LIMIT_WAITS = (
    "SELECT set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)"
)


def limit_redemption_waits() -> None:
    """From here to the end of the transaction: lock and statement timeouts of a redemption."""
    with connection.cursor() as cursor:
        cursor.execute(_LIMIT_WAITS, [REDEMPTION_LOCK_TIMEOUT, REDEMPTION_STATEMENT_TIMEOUT])


def gave_up_waiting(error: Exception) -> bool:
    """Whether a database error is a lock or statement timeout (or a cancel): nothing was
    written, and the same request may succeed a moment later."""
    return isinstance(
        error.__cause__, psycopg.errors.LockNotAvailable | psycopg.errors.QueryCanceled
    )
