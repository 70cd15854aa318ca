"""REST top-up in card mode: the Voucher is a card's PIN, redeemed onto the balance the path
names (docs/rest-api.md)."""

from decimal import Decimal

from django.db import OperationalError, connection
from django.utils import timezone

from cards import lockout, pins
from cards.exceptions import RedemptionBusy
from cards.models.formats import PIN_MAX_LENGTH, PIN_MIN_LENGTH
from cards.services.redemption import Redemption, card_redeem, pin_well_formed
from cards.sql import redemption as sql
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
    address_required: bool = False,
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
        address_required=address_required,
        request_id=request_id,
        expected_amount=amount,
        end_time=end_time,
        allow_replay=True,
    )


def one_statement_topup(
    *, owner, ref, resource_id, pin, amount, end_time, start_time, channel, request_id
) -> tuple[str, dict] | None:
    """The common REST card top-up as one statement: (the REF_CONDITIONS key that finds the
    balance, the parameters of cards.sql.redemption.topup_statement but %(actor)s), or None
    when the request is not that case and the ORM path must run."""
    if connection.vendor != "postgresql" or owner != "subscription":
        return None
    if end_time is not None or start_time is not None:
        return None
    amount = Decimal(amount)
    if not amount.is_finite() or amount <= 0 or resource_id > MAX_RESOURCE_ID:
        return None
    pin = pins.normalize_pin(pin)
    if not (PIN_MIN_LENGTH <= len(pin) <= PIN_MAX_LENGTH and pin_well_formed(pin)):
        return None
    ((lookup, value),) = owner_filter(owner, ref).items()
    now = timezone.now()
    return lookup, {
        "ref": value,
        "resource_id": resource_id,
        "places": decimal_places(amount),
        "channel": channel,
        "since": now - lockout.lockout_window() - lockout.lockout_duration(),
        "needed": lockout.lockout_failures(channel),
        "client_needed": lockout.shared_lockout_failures(channel),
        "digests": pins.pin_digests(pin),
        "now": now,
        "amount": amount,
        "amount_limit": AMOUNT_LIMIT,
        "request_id": request_id,
        "lock_timeout": sql.REDEMPTION_LOCK_TIMEOUT,
    }


def _topup_in_one_statement(*, planned: tuple[str, dict], actor) -> bool:
    """one_statement_topup's statement run for `actor`; False when it did nothing, and the ORM
    path must run."""
    lookup, params = planned
    try:
        with hot_cursor() as cursor:
            cursor.execute(sql.topup_statement(lookup), {**params, "actor": actor.pk})
            return cursor.fetchone() is not None
    except OperationalError as error:
        # The balance stayed locked past the statement's lock_timeout: nothing was written.
        if sql.gave_up_waiting(error):
            raise RedemptionBusy() from error
        raise


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
    address_required: bool = False,
    request_id: str = "",
    one_statement: bool = True,
) -> None:
    """`card_topup` onto the balance a REST path names; the common case in one statement,
    unless `one_statement` is False (the caller ran one_statement_topup's statement already).

    With `address_required`, an attempt whose client address could not be read (None) is
    refused and audited by card_redeem (docs/panel.md).
    """
    if (
        one_statement
        and not (address_required and ip_address is None)
        and getattr(actor, "pk", None) is not None
    ):
        planned = one_statement_topup(
            owner=owner,
            ref=ref,
            resource_id=resource_id,
            pin=pin,
            amount=amount,
            end_time=end_time,
            start_time=start_time,
            channel=channel,
            request_id=request_id,
        )
        if planned is not None and _topup_in_one_statement(planned=planned, actor=actor):
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
        address_required=address_required,
        request_id=request_id,
    )
