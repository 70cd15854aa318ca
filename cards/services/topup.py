"""REST top-up in card mode: the Voucher is a card's PIN, redeemed onto the balance the path
names (docs/rest-api.md)."""

from decimal import Decimal

from django.db import connection
from django.utils import timezone

from cards import lockout, pins
from cards.models import (
    PIN_MAX_LENGTH,
    PIN_MIN_LENGTH,
    SERIAL_NUMBER_DIGITS,
)
from cards.services.redemption import Redemption, card_redeem, pin_well_formed
from wallets.exceptions import BadData
from wallets.models import Balance, Channel
from wallets.selectors import MAX_RESOURCE_ID, balance_by_ref, owner_filter
from wallets.services.checks import AMOUNT_LIMIT, decimal_places
from wallets.services.topup import check_topup
from wallets.services.validity import check_end_time
from wallets.sql import hot_cursor


def card_topup(
    *,
    pin: str,
    balance: Balance,
    amount: Decimal,
    end_time=None,
    start_time=None,
    actor=None,
    channel: str = Channel.REST,
    ip_address: str | None = None,
    request_id: str = "",
) -> Redemption:
    """Top up `balance` with the card whose PIN is the Voucher; Amount must be the card's.

    A retry of a successful top-up (same caller, card, balance, amount) returns the original
    success (`replayed`). An EndTime changes the balance's end in the same transaction (T7, E9).
    """
    amount = check_topup(
        balance, amount=amount, voucher=pins.normalize_pin(pin), start_time=start_time
    )
    subscription = balance.wallet.subscription
    if subscription is None:
        raise BadData("A card top-up needs a subscription's balance.")
    if end_time is not None:
        # Fail early, before the card is touched; balance_topup checks again under the lock.
        check_end_time(
            balance,
            end_time,
            now=timezone.now(),
            via_topup=True,
            aggregated=balance.parent_id is not None or balance.children.exists(),
        )
    return card_redeem(
        pin=pin,
        balance=balance,
        subscriber=subscription.subscriber,
        actor=actor,
        channel=channel,
        ip_address=ip_address,
        request_id=request_id,
        expected_amount=amount,
        end_time=end_time,
        allow_replay=True,
    )


# --- REST card top-up in one statement (PostgreSQL) -------------------------------------------
# The common case of a REST card top-up (a new, valid card onto a live simple or virtual balance
# of a subscription, no EndTime) as one statement: the same locks in the same order as
# card_redeem (subscriber, card, balance), the same checks, and the same rows written (card
# activated, balance credited, ledger entry, balance event, card event). Anything else (a failure
# to classify and audit, a replay, a periodic balance, an EndTime, SQLite) makes the statement
# change nothing and return no row; `card_topup_by_ref` then takes the ORM path, which finds the
# exact Result and records the failure. Rows are locked with FOR UPDATE before they are checked,
# so every check sees the row as it is under the lock (READ COMMITTED re-reads a row that changed).
_REF_CONDITIONS = {
    "wallet__subscription__external_id": "s.external_id = %(ref)s",
    "wallet__subscription__access_numbers__number": (
        "s.id = (SELECT a.subscription_id FROM subscribers_accessnumber a WHERE a.number = %(ref)s)"
    ),
    "wallet__subscription_id": "s.id = %(ref)s",
}
_TOPUP_STATEMENT = """
WITH target AS (
    SELECT b.id AS balance_id, sub.id AS subscriber_id, sub.reseller_id, t.currency
    FROM wallets_balance b
    JOIN wallets_balancetemplate t ON t.id = b.template_id
    JOIN wallets_wallet w ON w.id = b.wallet_id
    JOIN subscribers_subscription s ON s.id = w.subscription_id
    JOIN subscribers_subscriber sub ON sub.id = s.subscriber_id
    WHERE b.resource_id = %(resource_id)s AND {ref_condition}
      AND t.kind NOT IN ('periodic', 'meter') AND t.precision >= %(places)s
    FOR UPDATE OF sub
), unlocked AS (
    -- Fewer counted failures of this API client since the earliest moment a lock in force could
    -- have started than a lock needs: no lock (cards.lockout decides every other case).
    SELECT target.* FROM target
    WHERE (
        SELECT count(*) FROM (
            SELECT 1 FROM cards_cardevent e
            WHERE e.kind = 'redeem_failed' AND e.actor_id = %(actor)s AND e.channel = %(channel)s
              AND e.created_at > %(since)s AND NOT ((e.changes -> 'reason') = %(locked)s::jsonb)
            LIMIT %(needed)s
        ) failures
    ) < %(needed)s
), newest AS (
    -- The card card_find_by_pin picks (the newest, should two keys' digests both match).
    SELECT c.id FROM cards_topupcard c, unlocked
    WHERE c.pin_digest = ANY(%(digests)s)
    ORDER BY c.created_at DESC, c.id DESC
    LIMIT 1
), card AS (
    -- SKIP LOCKED: a card another request holds (the same card sent twice at once) is left to
    -- card_redeem, which waits for it and answers the exact Result, as without this statement.
    SELECT c.id, c.amount, c.currency, c.reseller_id, c.activated_at, c.blocked, c.expires_at,
           c.series || '-' || lpad(c.number::text, {serial_digits}, '0') AS serial
    FROM cards_topupcard c, newest
    WHERE c.id = newest.id
    FOR UPDATE OF c SKIP LOCKED
), go AS (
    SELECT b.id AS balance_id, card.id AS card_id, card.amount, card.currency, card.serial,
           unlocked.subscriber_id,
           nextval(pg_get_serial_sequence('wallets_ledgerentry', 'id')) AS entry_id
    FROM wallets_balance b, unlocked, card
    WHERE b.id = unlocked.balance_id
      AND card.activated_at IS NULL AND NOT card.blocked AND card.expires_at > %(now)s
      AND (card.reseller_id IS NULL OR card.reseller_id = unlocked.reseller_id)
      AND card.currency = unlocked.currency AND card.amount = %(amount)s
      AND b.start_time <= %(now)s AND (b.end_time IS NULL OR b.end_time > %(now)s)
      AND b.amount + card.amount < %(limit)s
    FOR UPDATE OF b
), activated AS (
    UPDATE cards_topupcard c
    SET activated_at = %(now)s, activated_by_id = go.subscriber_id, ledger_entry_id = go.entry_id
    FROM go WHERE c.id = go.card_id
    RETURNING c.id
), credit AS (
    UPDATE wallets_balance b SET amount = b.amount + go.amount
    FROM go WHERE b.id = go.balance_id
    RETURNING b.id, b.amount
), entry AS (
    INSERT INTO wallets_ledgerentry
        (id, balance_id, interval_id, amount, kind, channel, voucher, reason, actor_id,
         request_id, reverses_id, created_at)
    SELECT go.entry_id, go.balance_id, NULL, go.amount, 'redemption', %(channel)s, go.serial, '',
           %(actor)s, %(request_id)s, NULL, %(now)s
    FROM go
    RETURNING id
), balance_event AS (
    INSERT INTO wallets_balanceevent
        (balance_id, kind, channel, actor_id, ledger_entry_id, changes, reason, request_id,
         created_at)
    SELECT credit.id, 'redemption', %(channel)s, %(actor)s, entry.id,
           jsonb_build_object('amount', jsonb_build_array(
               (credit.amount - go.amount)::text, credit.amount::text)),
           '', %(request_id)s, %(now)s
    FROM credit, go, entry
), card_event AS (
    INSERT INTO cards_cardevent
        (kind, card_id, serial, batch_id, actor_id, subscriber_id, channel, ip_address, changes,
         created_at)
    SELECT 'redeemed', activated.id, go.serial, NULL, %(actor)s, go.subscriber_id, %(channel)s,
           NULL, jsonb_build_object('balance', go.balance_id, 'amount', go.amount::text,
                                    'currency', go.currency),
           %(now)s
    FROM activated, go
)
SELECT entry.id FROM entry
"""


def _topup_in_one_statement(
    *, owner, ref, resource_id, pin, amount, end_time, start_time, actor, channel, request_id
) -> bool:
    """The common REST card top-up as one statement; False when it did nothing (see above)."""
    if connection.vendor != "postgresql" or owner != "subscription":
        return False
    if end_time is not None or start_time is not None or getattr(actor, "pk", None) is None:
        return False
    amount = Decimal(amount)
    if not amount.is_finite() or amount <= 0 or resource_id > MAX_RESOURCE_ID:
        return False
    pin = pins.normalize_pin(pin)
    if not (PIN_MIN_LENGTH <= len(pin) <= PIN_MAX_LENGTH and pin_well_formed(pin)):
        return False
    ((lookup, value),) = owner_filter(owner, ref).items()
    now = timezone.now()
    params = {
        "ref": value,
        "resource_id": resource_id,
        "places": decimal_places(amount),
        "actor": actor.pk,
        "channel": channel,
        "since": now - lockout.lockout_window() - lockout.lockout_duration(),
        "locked": f'"{lockout.LOCKED_REASON}"',
        "needed": lockout.lockout_failures(channel),
        "digests": pins.pin_digests(pin),
        "now": now,
        "amount": amount,
        "limit": AMOUNT_LIMIT,
        "request_id": request_id,
    }
    statement = _TOPUP_STATEMENT.format(
        ref_condition=_REF_CONDITIONS[lookup], serial_digits=SERIAL_NUMBER_DIGITS
    )
    with hot_cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchone() is not None


def card_topup_by_ref(
    *,
    owner: str,
    ref: str,
    resource_id: int,
    pin: str,
    amount: Decimal,
    end_time=None,
    start_time=None,
    actor=None,
    channel: str = Channel.REST,
    ip_address: str | None = None,
    request_id: str = "",
) -> None:
    """`card_topup` onto the balance a REST path names; the common case in one statement."""
    if _topup_in_one_statement(
        owner=owner,
        ref=ref,
        resource_id=resource_id,
        pin=pin,
        amount=amount,
        end_time=end_time,
        start_time=start_time,
        actor=actor,
        channel=channel,
        request_id=request_id,
    ):
        return
    balance = balance_by_ref(owner=owner, ref=ref, resource_id=resource_id)
    card_topup(
        pin=pin,
        balance=balance,
        amount=amount,
        end_time=end_time,
        start_time=start_time,
        actor=actor,
        channel=channel,
        ip_address=ip_address,
        request_id=request_id,
    )
