"""Redeem a card onto a balance: credit, activate, audit in one transaction (docs/panel.md)."""

from dataclasses import dataclass
from decimal import Decimal

from django.db import OperationalError, connection, transaction
from django.utils import timezone

from cards import lockout, pins
from cards.events import card_redeem_failed_event, card_redeemed_event
from cards.exceptions import (
    CardAlreadyRedeemed,
    CardAmountMismatch,
    CardBlocked,
    CardCodeInvalid,
    CardCurrencyMismatch,
    CardDormant,
    CardError,
    CardExpired,
    CardNotFound,
    CardWrongReseller,
    NoMainBalance,
    RedemptionAddressUnknown,
    RedemptionBusy,
    RedemptionLocked,
)
from cards.models import TopUpCard
from cards.models.formats import PIN_MAX_LENGTH, PIN_MIN_LENGTH
from cards.sql import redemption as sql
from subscribers.models import Subscriber
from wallets.models import Balance, BalanceTemplate, Channel, LedgerKind
from wallets.selectors import subscriber_main_balance
from wallets.services.checks import AMOUNT_LIMIT
from wallets.services.topup import balance_topup
from wallets.sql import hot_cursor


def card_find_by_pin(pin: str, *, for_update: bool = False) -> TopUpCard | None:
    queryset = TopUpCard.objects.filter(pin_digest__in=pins.pin_digests(pin))
    if for_update:
        queryset = queryset.select_for_update(of=("self",))
    return queryset.select_related("reseller", "ledger_entry").first()


@dataclass(frozen=True)
class Redemption:
    card: TopUpCard
    balance: Balance
    replayed: bool = False


def pin_well_formed(pin: str) -> bool:
    return pin.isascii() and pin.isdigit()


def _redeem_locked(
    *,
    pin,
    check_digit_ok,
    balance,
    subscriber,
    actor,
    channel,
    request_id,
    expected_amount,
    end_time,
    allow_replay,
) -> Redemption:
    if connection.vendor == "postgresql":
        # The card's row may be held by a background job for minutes: wait a moment at most
        # (cards.sql.redemption.REDEMPTION_LOCK_TIMEOUT). Set here, after the subscriber's and the
        # lockout's locks, which only other attempts hold, and only briefly.
        sql.limit_redemption_waits()
    card = card_find_by_pin(pin, for_update=True)
    if card is None:
        # Our PINs end in a Luhn check digit, so a failing one is most likely a typo; it is
        # still looked up because cards imported from other systems carry PINs without one.
        raise CardNotFound() if check_digit_ok else CardCodeInvalid()
    if card.activated_at is not None:
        entry = card.ledger_entry
        if (
            allow_replay
            and entry is not None
            # A reversed redemption is no longer a success to repeat.
            and card.reversed_at is None
            and entry.balance_id == balance.pk
            and entry.actor_id == getattr(actor, "pk", None)
            and (expected_amount is None or expected_amount == card.amount)
        ):
            return Redemption(card=card, balance=entry.balance, replayed=True)
        raise CardAlreadyRedeemed(card=card)
    if card.dormant:
        # Its box is not recorded as delivered: not in circulation yet (docs/cards.md).
        raise CardDormant(card=card)
    if card.blocked:
        raise CardBlocked(card=card)
    if card.expires_at <= timezone.now():
        raise CardExpired(card=card)
    if card.reseller_id is not None and card.reseller_id != subscriber.reseller_id:
        raise CardWrongReseller(card=card)
    if card.currency != balance.template.currency:
        raise CardCurrencyMismatch(card=card)
    if expected_amount is not None and Decimal(expected_amount) != card.amount:
        raise CardAmountMismatch(card=card)
    result = balance_topup(
        balance=balance,
        amount=card.amount,
        voucher=card.serial,
        end_time=end_time,
        actor=actor,
        channel=channel,
        kind=LedgerKind.REDEMPTION,
        request_id=request_id,
    )
    card.activated_at = result.entry.created_at
    card.activated_by = subscriber
    card.ledger_entry = result.entry
    card.save(update_fields=["activated_at", "activated_by", "ledger_entry"])
    card_redeemed_event(
        card=card, balance=balance, subscriber=subscriber, actor=actor, channel=channel
    )
    return Redemption(card=card, balance=result.balance)


def card_redeem(
    *,
    pin: str,
    balance: Balance,
    subscriber: Subscriber,
    actor=None,
    channel: str = Channel.PANEL,
    ip_address: str | None = None,
    address_required: bool = False,
    request_id: str = "",
    expected_amount: Decimal | None = None,
    end_time=None,
    allow_replay: bool = False,
) -> Redemption:
    """Redeem the card with this PIN onto `balance`: credit, activate, audit, in one transaction.

    Refused with RedemptionLocked, without looking the code up, while one of the attempt's keys
    is locked out (cards.lockout), and with RedemptionAddressUnknown when `address_required`
    and the client address could not be read (None). A failure changes nothing but is itself
    recorded as an audit event (for the lockout and the operators), after the failed attempt's
    savepoint has rolled back. Call it outside any transaction of your own: an outer rollback
    would erase that event and with it the lockout count.

    RedemptionBusy, with nothing written or audited, when the card or balance stays locked by
    other work (a background Mass Edit) for longer than a redemption waits.
    """
    pin = pins.normalize_pin(pin)
    try:
        with transaction.atomic():
            # One attempt at a time per subscriber, and per shared key (client address, API
            # client), so parallel requests cannot all pass the lockout check before their
            # failures are recorded.
            Subscriber.objects.select_for_update().filter(pk=subscriber.pk).first()
            if connection.vendor == "postgresql":
                sql.advisory_xact_lock(
                    lockout.attempt_lock_keys(actor=actor, channel=channel, ip_address=ip_address)
                )
            try:
                if address_required and ip_address is None:
                    # Unknown address: the address's count cannot be checked, so fail closed.
                    raise RedemptionAddressUnknown()
                locked_until = lockout.redemption_locked_until(
                    subscriber=subscriber, actor=actor, channel=channel, ip_address=ip_address
                )
                if locked_until is not None:
                    raise RedemptionLocked(
                        lockout.locked_message(locked_until), locked_until=locked_until
                    )
                if not (PIN_MIN_LENGTH <= len(pin) <= PIN_MAX_LENGTH and pin_well_formed(pin)):
                    raise CardCodeInvalid()
                with transaction.atomic():
                    return _redeem_locked(
                        pin=pin,
                        check_digit_ok=pins.luhn_valid(pin),
                        balance=balance,
                        subscriber=subscriber,
                        actor=actor,
                        channel=channel,
                        request_id=request_id,
                        expected_amount=expected_amount,
                        end_time=end_time,
                        allow_replay=allow_replay,
                    )
            except CardError as error:
                failure = error
                card_redeem_failed_event(
                    card=error.card,
                    reason=error.code,
                    subscriber=subscriber,
                    actor=actor,
                    channel=channel,
                    ip_address=ip_address,
                )
    except OperationalError as error:
        if sql.gave_up_waiting(error):
            raise RedemptionBusy() from error
        raise
    raise failure


def card_redeem_main(
    *, pin: str, subscriber: Subscriber, actor, ip_address: str | None
) -> Redemption:
    """`card_redeem` in the panel: onto the subscriber's main balance, the client address
    required, the subscriber's own earlier success answered as a replay (docs/panel.md).

    NoMainBalance, with nothing written or audited, when the subscriber has no main balance.
    On PostgreSQL the commonest cases take two statements
    (cards.sql.redemption.panel_redeem_statement).
    """
    redemption = _redeem_main_in_two_statements(
        pin=pin, subscriber=subscriber, actor=actor, ip_address=ip_address
    )
    if redemption is not None:
        return redemption
    balance = subscriber_main_balance(subscriber)
    if balance is None:
        raise NoMainBalance()
    return card_redeem(
        pin=pin,
        balance=balance,
        subscriber=subscriber,
        actor=actor,
        channel=Channel.PANEL,
        ip_address=ip_address,
        address_required=True,
        allow_replay=True,
    )


def _redeem_main_in_two_statements(*, pin, subscriber, actor, ip_address) -> Redemption | None:
    """cards.sql.redemption.PANEL_LOCKS then panel_redeem_statement; None when they wrote
    nothing, and card_redeem must run. A code no card has raises its CardError once its failure
    is committed."""
    if connection.vendor != "postgresql" or ip_address is None:
        return None
    if getattr(actor, "pk", None) is None or subscriber.pk is None:
        return None
    pin = pins.normalize_pin(pin)
    well_formed = PIN_MIN_LENGTH <= len(pin) <= PIN_MAX_LENGTH and pin_well_formed(pin)
    digests = pins.pin_digests(pin) if well_formed else []
    not_found = CardNotFound if well_formed and pins.luhn_valid(pin) else CardCodeInvalid
    (address_lock,) = lockout.attempt_lock_keys(
        actor=actor, channel=Channel.PANEL, ip_address=ip_address
    )
    ip_low, ip_high = lockout.address_range(ip_address)
    params = {
        "subscriber": subscriber.pk,
        "digests": digests,
        "address_lock": address_lock,
        "lock_timeout": sql.REDEMPTION_LOCK_TIMEOUT,
        "statement_timeout": sql.REDEMPTION_STATEMENT_TIMEOUT,
    }
    try:
        with transaction.atomic(), hot_cursor() as cursor:
            cursor.execute(sql.PANEL_LOCKS, params)
            locked = cursor.fetchone()
            if locked is None:  # the subscriber is gone: card_redeem says what follows
                return None
            now = timezone.now()  # after waiting for the locks, as card_redeem reads it
            params.update(
                actor=actor.pk,
                channel=Channel.PANEL,
                ip=ip_address,
                ip_low=ip_low,
                ip_high=ip_high,
                since=now - lockout.lockout_window() - lockout.lockout_duration(),
                needed=lockout.lockout_failures(Channel.PANEL),
                address_needed=lockout.shared_lockout_failures(Channel.PANEL),
                not_found_reason=not_found.code,
                may_record=locked[0],
                now=now,
                limit=AMOUNT_LIMIT,
            )
            cursor.execute(sql.panel_redeem_statement(), params)
            row = cursor.fetchone()
    except OperationalError as error:
        # The card or balance stayed locked past the lock timeout: nothing was written.
        if sql.gave_up_waiting(error):
            raise RedemptionBusy() from error
        raise
    if row is None:
        return None
    (
        reason,
        card_id,
        series,
        number,
        amount,
        currency,
        balance_id,
        new_amount,
        precision,
        entry_id,
    ) = row
    if reason is not None:
        raise not_found()
    card = TopUpCard(
        pk=card_id,
        series=series,
        number=number,
        amount=amount,
        currency=currency,
        activated_at=now,
        activated_by=subscriber,
        ledger_entry_id=entry_id,
    )
    template = BalanceTemplate(precision=precision, currency=currency)
    return Redemption(
        card=card, balance=Balance(pk=balance_id, amount=new_amount, template=template)
    )
