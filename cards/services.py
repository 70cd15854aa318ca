"""Writes to cards: batch generation and redemption."""

import datetime as dt
import hmac
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import IntegrityError, connection, transaction
from django.db.models import (
    BigIntegerField,
    CharField,
    DateTimeField,
    F,
    Max,
    QuerySet,
    Value,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast, Concat, JSONObject, LPad
from django.utils import timezone

from subscribers.models import Reseller, Subscriber
from subscribers.selectors import staff_reseller
from wallets.exceptions import AlreadyRedeemed, BadData
from wallets.models import Balance, Channel, LedgerEntry, LedgerKind
from wallets.selectors import MAX_RESOURCE_ID, balance_by_ref, owner_filter
from wallets.services import (
    AMOUNT_LIMIT,
    balance_change_end,
    balance_topup,
    check_end_time,
    decimal_places,
    ledger_entry_reverse,
)
from wallets.services import check_topup as balance_topup_checks
from wallets.sql import hot_cursor

from . import lockout, pins
from .exceptions import (
    CardAlreadyRedeemed,
    CardAmountMismatch,
    CardBlocked,
    CardCodeInvalid,
    CardCurrencyMismatch,
    CardEditError,
    CardError,
    CardExpired,
    CardNotFound,
    CardPermissionDenied,
    CardWrongReseller,
    GenerationError,
    RedemptionLocked,
)
from .models import (
    MAX_CARD_NUMBER,
    PIN_MAX_LENGTH,
    PIN_MIN_LENGTH,
    SERIAL_NUMBER_DIGITS,
    CardBatch,
    CardEvent,
    CardEventKind,
    CardSeries,
    TopUpCard,
)

logger = logging.getLogger(__name__)

MAX_BATCH_QUANTITY = 1_000_000
# Live cards of one PIN length may fill at most this share of the PIN space (PRODUCT.md 2).
PIN_SPACE_SHARE = 10_000
_SERIES = re.compile(r"^[0-9]{1,6}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_CHUNK = 5_000

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class GenerationResult:
    batch: CardBatch
    pins: list[str]
    """The new PINs in serial order, for the one-time download. Never logged, never stored."""


def _validate_generation(
    *, series, quantity, amount, currency, pin_length, expires_at
) -> tuple[Decimal, str]:
    if not isinstance(series, str) or not _SERIES.match(series):
        raise GenerationError("Series must be 1 to 6 digits.", field="series")
    if not isinstance(quantity, int) or not 1 <= quantity <= MAX_BATCH_QUANTITY:
        raise GenerationError(
            f"Quantity must be between 1 and {MAX_BATCH_QUANTITY:,}.", field="quantity"
        )
    try:
        amount = Decimal(str(amount))
    except InvalidOperation:
        raise GenerationError("Amount must be a number.", field="amount") from None
    if not amount.is_finite() or amount <= 0:
        raise GenerationError("Amount must be greater than zero.", field="amount")
    if amount != amount.quantize(Decimal("0.01")) or amount >= Decimal("1e12"):
        raise GenerationError(
            "Amount may have at most 2 decimal places and 12 digits.", field="amount"
        )
    currency = (currency or "").strip().upper()
    if not _CURRENCY.match(currency):
        raise GenerationError("Currency must be a three-letter code such as USD.", field="currency")
    if not isinstance(pin_length, int) or not PIN_MIN_LENGTH <= pin_length <= PIN_MAX_LENGTH:
        raise GenerationError(
            f"PIN length must be between {PIN_MIN_LENGTH} and {PIN_MAX_LENGTH} digits.",
            field="pin_length",
        )
    if expires_at <= timezone.now():
        raise GenerationError("Expiry date must be in the future.", field="expires_at")
    return amount.quantize(Decimal("0.01")), currency


def pin_space_capacity(pin_length: int) -> int:
    """How many live cards of this PIN length the 1-in-10,000 rule allows at once."""
    return pins.pin_space(pin_length) // PIN_SPACE_SHARE


def pin_space_check(pin_length: int, quantity: int) -> None:
    live = (
        TopUpCard.objects.filter(
            pin_length=pin_length,
            activated_at__isnull=True,
            expires_at__gt=timezone.now(),
        )
        .order_by()
        .count()
    )
    capacity = pin_space_capacity(pin_length)
    if live + quantity > capacity:
        raise GenerationError(
            f"{pin_length}-digit PINs would become guessable: at most {capacity:,} live cards "
            f"may share that length (1 in {PIN_SPACE_SHARE:,} of the PIN space) and "
            f"{live:,} exist already. Choose a longer PIN or a smaller quantity.",
            field="pin_length",
        )


def _lock_series(series: str) -> int:
    """Lock the series for this transaction and return its next free number."""
    CardSeries.objects.bulk_create([CardSeries(series=series)], ignore_conflicts=True)
    CardSeries.objects.select_for_update().get(series=series)
    highest = TopUpCard.objects.filter(series=series).aggregate(top=Max("number"))["top"]
    return (highest or 0) + 1


def _unique_pins(length: int, count: int, exclude: set[str] | None = None) -> list[str]:
    seen = set(exclude or ())
    result: list[str] = []
    while len(result) < count:
        pin = pins.generate_pin(length)
        if pin not in seen:
            seen.add(pin)
            result.append(pin)
    return result


def _existing_digests(digests: list[bytes]) -> set[bytes]:
    found: set[bytes] = set()
    for start in range(0, len(digests), _CHUNK):
        chunk = digests[start : start + _CHUNK]
        found.update(
            bytes(d)
            for d in TopUpCard.objects.filter(pin_digest__in=chunk).values_list(
                "pin_digest", flat=True
            )
        )
    return found


def _replace_colliding(pin_list: list[str], length: int) -> int:
    """Give a fresh PIN to every card whose PIN another card already has. Returns how many."""
    replaced = 0
    while True:
        digests = [pins.pin_digest(p) for p in pin_list]
        taken = _existing_digests(digests)
        if not taken:
            return replaced
        in_use = set(pin_list)
        for index, digest in enumerate(digests):
            if digest in taken:
                fresh = _unique_pins(length, 1, exclude=in_use)[0]
                in_use.add(fresh)
                pin_list[index] = fresh
                replaced += 1


_COPY_COLUMNS = (
    "series",
    "number",
    "amount",
    "currency",
    "pin_digest",
    "pin_encrypted",
    "pin_length",
    "pin_last4",
    "reseller_id",
    "expires_at",
    "blocked",
    "batch_id",
    "created_at",
)
_COPY_TYPES = (
    "varchar",
    "int8",
    "numeric",
    "varchar",
    "bytea",
    "bytea",
    "int2",
    "varchar",
    "int8",
    "timestamptz",
    "bool",
    "int8",
    "timestamptz",
)


def _card_rows(batch: CardBatch, pin_list: list[str], progress: Progress | None) -> Iterable[tuple]:
    # The per-row work is the cost of a million-card batch: keys are looked up once and the
    # constant columns bound to locals.
    digest_key = pins.digest_keys()[0]
    encrypt = pins.pin_encrypter()
    digest = hmac.digest
    series, first, amount, currency = batch.series, batch.first_number, batch.amount, batch.currency
    length, reseller, expires = batch.pin_length, batch.reseller_id, batch.expires_at
    batch_id, created = batch.pk, batch.created_at
    total = len(pin_list)
    for offset, pin in enumerate(pin_list):
        yield (
            series,
            first + offset,
            amount,
            currency,
            digest(digest_key, pin.encode(), "sha256"),
            encrypt(pin),
            length,
            pin[-4:],
            reseller,
            expires,
            False,
            batch_id,
            created,
        )
        if progress and (offset + 1) % _CHUNK == 0:
            progress(offset + 1, total)


def _write_cards(batch: CardBatch, pin_list: list[str], progress: Progress | None) -> None:
    if connection.vendor == "postgresql":
        table = TopUpCard._meta.db_table
        with connection.cursor() as cursor, connection.wrap_database_errors:
            raw = cursor.cursor  # the psycopg cursor, inside Django's transaction
            sql = f"COPY {table} ({', '.join(_COPY_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
            with raw.copy(sql) as copy:
                copy.set_types(_COPY_TYPES)
                for row in _card_rows(batch, pin_list, progress):
                    copy.write_row(row)
    else:
        fields = _COPY_COLUMNS
        cards = (
            TopUpCard(**dict(zip(fields, row, strict=True)))
            for row in _card_rows(batch, pin_list, progress)
        )
        chunk: list[TopUpCard] = []
        for card in cards:
            chunk.append(card)
            if len(chunk) == _CHUNK:
                TopUpCard.objects.bulk_create(chunk)
                chunk = []
        if chunk:
            TopUpCard.objects.bulk_create(chunk)
    if progress:
        progress(len(pin_list), len(pin_list))


def generation_request_check(
    *, series, quantity, amount, currency, pin_length, reseller, expires_at, actor
) -> tuple[Decimal, str]:
    """The checks a generation request passes before anything is written (also used to refuse
    a background job at once). Returns the normalised amount and currency."""
    amount, currency = _validate_generation(
        series=series,
        quantity=quantity,
        amount=amount,
        currency=currency,
        pin_length=pin_length,
        expires_at=expires_at,
    )
    try:
        _scope_check(actor=actor, reseller=reseller)
    except CardPermissionDenied as error:
        raise GenerationError(error.message, field="reseller") from None
    return amount, currency


@transaction.atomic
def card_batch_generate(
    *,
    series: str,
    quantity: int,
    amount: Decimal | str,
    currency: str,
    pin_length: int,
    reseller: Reseller | None,
    expires_at: dt.datetime,
    actor=None,
    progress: Progress | None = None,
) -> GenerationResult:
    """Generate `quantity` cards with sequential serials: all of them or none."""
    amount, currency = generation_request_check(
        series=series,
        quantity=quantity,
        amount=amount,
        currency=currency,
        pin_length=pin_length,
        reseller=reseller,
        expires_at=expires_at,
        actor=actor,
    )
    first_number = _lock_series(series)
    if first_number + quantity - 1 > MAX_CARD_NUMBER:
        raise GenerationError(
            f"Series {series} has room for only {MAX_CARD_NUMBER - first_number + 1:,} more cards.",
            field="quantity",
        )
    pin_space_check(pin_length, quantity)
    batch = CardBatch.objects.create(
        series=series,
        first_number=first_number,
        quantity=quantity,
        amount=amount,
        currency=currency,
        pin_length=pin_length,
        reseller=reseller,
        expires_at=expires_at,
        created_by=actor,
    )
    pin_list = _unique_pins(pin_length, quantity)
    existing = TopUpCard.objects.filter(pin_length=pin_length).exists()
    # An existing card of the same length can share a PIN (about once per million at 12 digits
    # with a million cards): write optimistically, and only on a clash look the PINs up and
    # replace the clashing ones, so the common case is a single COPY.
    try:
        with transaction.atomic():
            _write_cards(batch, pin_list, progress)
    except IntegrityError:
        if not existing:
            raise
        replaced = _replace_colliding(pin_list, pin_length)
        logger.info(
            "Batch %s: replaced %d PINs that existing cards already had", batch.pk, replaced
        )
        _write_cards(batch, pin_list, progress)
    CardEvent.objects.create(
        kind=CardEventKind.GENERATED,
        batch=batch,
        actor=actor,
        serial=batch.first_serial,
        changes={
            "series": series,
            "first_serial": batch.first_serial,
            "last_serial": batch.last_serial,
            "quantity": quantity,
            "amount": str(amount),
            "currency": currency,
            "pin_length": pin_length,
            "reseller": reseller.name if reseller else None,
            "expires_at": expires_at.isoformat(),
        },
    )
    return GenerationResult(batch=batch, pins=pin_list)


# --- operator edits: Mass Edit, Delete all, PIN reveal, one-time batch download -------------

PRESERVE: Any = object()
"""Mass Edit's "preserve": leave the field as each card has it."""


@dataclass(frozen=True)
class MassUpdateResult:
    selected: int
    """Cards the search selected that may change (not activated), locked for the update."""
    changed: dict[str, int]
    """Per field (expires_at, reseller, blocked): how many cards it actually changed."""


def _scope_check(*, actor, reseller) -> None:
    scoped = staff_reseller(actor)
    if scoped is not None and (reseller is None or reseller.pk != scoped.pk):
        raise CardPermissionDenied(f"You may only assign cards to {scoped.name}.", field="reseller")


def _editable(cards: QuerySet) -> QuerySet:
    """The selected cards that may change: never an activated one (they are history)."""
    return cards.filter(activated_at__isnull=True).select_related(None).order_by()


_LOCKED_CARDS = "topup_locked_cards"
_LOCKED_IDS = "SELECT id FROM topup_locked_cards"


def _lock_cards(cards: QuerySet) -> tuple[QuerySet, int]:
    """Lock the selected rows in primary-key order (deadlock-free) without loading them.

    Returns the locked cards and their number. Every later statement of the edit must work on
    exactly these rows: re-running the search would also match cards another transaction
    commits meanwhile (a generated batch), and those would be changed or deleted without their
    audit event, or get only some of the fields (found by tests/reliability). So their ids are
    kept in a temporary table that lives until the transaction ends.
    """
    if connection.vendor != "postgresql":
        # SQLite: the first write takes the database's write lock until the commit, so no other
        # transaction can add a card between this edit's statements.
        return cards, cards.count()
    try:
        sql, params = cards.order_by("pk").values("pk").query.sql_with_params()
    except EmptyResultSet:  # a selection empty by construction (`pk__in=[]`, `.none()`)
        return cards.none(), 0
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {_LOCKED_CARDS}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {_LOCKED_CARDS} ON COMMIT DROP AS "  # noqa: S608
            f"SELECT pk AS id FROM ({sql} FOR UPDATE) AS locked",
            params,
        )
        count = cursor.rowcount
        # Row counts for the planner: a hash join for a large selection, not a loop per id.
        cursor.execute(f"ANALYZE {_LOCKED_CARDS}")
    locked = TopUpCard.objects.filter(pk__in=RawSQL(_LOCKED_IDS, ()))  # noqa: S611
    return locked.order_by(), count


def _serial_expression():
    return Concat(
        F("series"),
        Value("-"),
        LPad(Cast("number", CharField()), SERIAL_NUMBER_DIGITS, Value("0")),
        output_field=CharField(),
    )


def _insert_events(cards: QuerySet, *, kind: str, actor, card: bool, changes) -> int:
    """INSERT … SELECT one CardEvent per selected card: set-based, no rows through Python."""
    rows = cards.annotate(
        ev_kind=Value(kind, output_field=CharField()),
        ev_card=F("pk") if card else Value(None, output_field=BigIntegerField()),
        ev_serial=_serial_expression(),
        ev_batch=F("batch_id"),
        ev_actor=Value(getattr(actor, "pk", None), output_field=BigIntegerField()),
        ev_channel=Value(Channel.ADMIN, output_field=CharField()),
        ev_changes=changes,
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
    sql, params = rows.query.sql_with_params()
    table = CardEvent._meta.db_table
    columns = "kind, card_id, serial, batch_id, actor_id, channel, changes, created_at"
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} ({columns}) {sql}", params)  # noqa: S608
        return cursor.rowcount


def _json_value(value) -> Value:
    return Value(value, output_field=CharField()) if value is not None else Value(None)


@transaction.atomic
def cards_mass_update(
    *,
    cards: QuerySet,
    expires_at: dt.datetime | Any = PRESERVE,
    reseller: Reseller | None | Any = PRESERVE,
    blocked: bool | Any = PRESERVE,
    actor,
) -> MassUpdateResult:
    """Apply Mass Edit to every card `cards` selects (not only a page), in set-based queries.

    Activated cards are never changed. Each changed field of each card is audited as a
    CardEvent (edited with old and new value; blocked / unblocked), in the same transaction.
    """
    if expires_at is not PRESERVE and (
        not isinstance(expires_at, dt.datetime) or timezone.is_naive(expires_at)
    ):
        raise CardEditError("Expiration Date must be a date and time.", field="expires_at")
    if reseller is not PRESERVE:
        if reseller is not None and not isinstance(reseller, Reseller):
            raise CardEditError("Company must be a reseller.", field="reseller")
        _scope_check(actor=actor, reseller=reseller)
    if blocked is not PRESERVE and not isinstance(blocked, bool):
        raise CardEditError("Block must be block, unblock or preserve.", field="blocked")
    target, selected = _lock_cards(_editable(cards))
    changed: dict[str, int] = {}
    if not selected:
        # Nothing to change, and no statement to run: an empty selection compiles to no SQL.
        asked = {"expires_at": expires_at, "reseller": reseller, "blocked": blocked}
        changed = {field: 0 for field, value in asked.items() if value is not PRESERVE}
        return MassUpdateResult(selected=0, changed=changed)
    if expires_at is not PRESERVE:
        touched = target.exclude(expires_at=expires_at)
        _insert_events(
            touched,
            kind=CardEventKind.EDITED,
            actor=actor,
            card=True,
            changes=JSONObject(
                field=Value("expires_at"),
                old=F("expires_at"),
                new=_json_value(expires_at.isoformat()),
            ),
        )
        changed["expires_at"] = touched.update(expires_at=expires_at)
    if reseller is not PRESERVE:
        touched = target.exclude(reseller=reseller) if reseller else target.exclude(reseller=None)
        _insert_events(
            touched,
            kind=CardEventKind.EDITED,
            actor=actor,
            card=True,
            changes=JSONObject(
                field=Value("reseller"),
                old=F("reseller_id"),
                new=Value(reseller.pk if reseller else None, output_field=BigIntegerField()),
                new_name=_json_value(reseller.name if reseller else None),
            ),
        )
        changed["reseller"] = touched.update(reseller=reseller)
    if blocked is not PRESERVE:
        touched = target.filter(blocked=not blocked)
        _insert_events(
            touched,
            kind=CardEventKind.BLOCKED if blocked else CardEventKind.UNBLOCKED,
            actor=actor,
            card=True,
            changes=JSONObject(field=Value("blocked"), old=Value(not blocked), new=Value(blocked)),
        )
        changed["blocked"] = touched.update(blocked=blocked)
    return MassUpdateResult(selected=selected, changed=changed)


@transaction.atomic
def cards_mass_delete(*, cards: QuerySet, actor) -> int:
    """Delete every card `cards` selects except activated ones; returns how many went.

    Each deletion is audited with the serial and what the reports need to count the card on the
    days before its deletion (reports.selectors: amount, currency, reseller, series, created_at,
    expires_at and blocked as they were when it went), so the history outlives the card; the
    card's earlier events keep their serial and lose only the link. The datetimes land in the
    JSON as the database writes them: ISO 8601 with a "T" and an offset on PostgreSQL (jsonb),
    the column's own "YYYY-MM-DD HH:MM:SS[.ffffff]" UTC text on SQLite; the reports read both.
    """
    target, selected = _lock_cards(_editable(cards))
    if not selected:
        return 0
    _insert_events(
        target,
        kind=CardEventKind.DELETED,
        actor=actor,
        card=False,
        changes=JSONObject(
            amount=Cast("amount", CharField()),
            currency=F("currency"),
            reseller=F("reseller_id"),
            series=F("series"),
            created_at=F("created_at"),
            expires_at=F("expires_at"),
            blocked=F("blocked"),
        ),
    )
    CardEvent.objects.filter(card__in=target.values("pk")).update(card=None)
    # One DELETE … WHERE: no per-row collection (nothing but the events points at a card that
    # was never activated, and those were just unlinked).
    return target._raw_delete(target.db)


def card_pin_reveal(*, card: TopUpCard, actor, ip_address: str | None = None) -> str:
    """The card's PIN for a permitted operator; every reveal is an audit event."""
    if actor is None or not actor.has_perm("cards.view_pin"):
        raise CardPermissionDenied("You are not allowed to see PINs.")
    scoped = staff_reseller(actor)
    if scoped is not None and card.reseller_id != scoped.pk:
        raise CardPermissionDenied("You are not allowed to see this card.")
    pin = pins.decrypt_pin(card.pin_encrypted)
    CardEvent.objects.create(
        kind=CardEventKind.PIN_REVEALED,
        card=card,
        serial=card.serial,
        batch_id=card.batch_id,
        actor=actor,
        channel=Channel.ADMIN,
        ip_address=ip_address,
    )
    return pin


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
    allow_replay,
) -> Redemption:
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
        actor=actor,
        channel=channel,
        kind=LedgerKind.REDEMPTION,
        request_id=request_id,
    )
    card.activated_at = result.entry.created_at
    card.activated_by = subscriber
    card.ledger_entry = result.entry
    card.save(update_fields=["activated_at", "activated_by", "ledger_entry"])
    CardEvent.objects.create(
        kind=CardEventKind.REDEEMED,
        card=card,
        serial=card.serial,
        actor=actor,
        subscriber=subscriber,
        channel=channel,
        changes={"balance": balance.pk, "amount": str(card.amount), "currency": card.currency},
    )
    return Redemption(card=card, balance=result.balance)


def _record_failed_redemption(*, error: CardError, subscriber, actor, channel, ip_address) -> None:
    CardEvent.objects.create(
        kind=CardEventKind.REDEEM_FAILED,
        serial=error.card.serial if error.card else "",
        card_id=error.card.pk if error.card else None,
        actor=actor,
        subscriber=subscriber,
        channel=channel,
        ip_address=ip_address,
        changes={"reason": error.code},
    )


def card_redeem(
    *,
    pin: str,
    balance: Balance,
    subscriber: Subscriber,
    actor=None,
    channel: str = Channel.PANEL,
    ip_address: str | None = None,
    request_id: str = "",
    expected_amount: Decimal | None = None,
    allow_replay: bool = False,
) -> Redemption:
    """Redeem the card with this PIN onto `balance`: credit, activate, audit, in one transaction.

    Refused with RedemptionLocked, without looking the code up, while the subscriber, the client
    IP or the API client is locked out (cards.lockout). A failure changes nothing but is itself
    recorded as an audit event (for the lockout and the operators), after the failed attempt's
    savepoint has rolled back. Call it outside any transaction of your own: an outer rollback
    would erase that event and with it the lockout count.
    """
    pin = pins.normalize_pin(pin)
    with transaction.atomic():
        # One attempt at a time per subscriber, so parallel requests cannot all pass the lockout
        # check before any of their failures is recorded.
        Subscriber.objects.select_for_update().filter(pk=subscriber.pk).first()
        try:
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
                    allow_replay=allow_replay,
                )
        except CardError as error:
            failure = error
            _record_failed_redemption(
                error=error,
                subscriber=subscriber,
                actor=actor,
                channel=channel,
                ip_address=ip_address,
            )
    raise failure


# --- REST top-up in card mode, and reversal (PRODUCT.md sections 4 and 2) --------------------


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
    amount = balance_topup_checks(
        balance, amount=amount, voucher=pins.normalize_pin(pin), start_time=start_time
    )
    subscription = balance.wallet.subscription
    if subscription is None:
        raise BadData("A card top-up needs a subscription's balance.")
    if end_time is not None:
        # Fail early, before the card is touched; checked again under the lock below.
        check_end_time(
            balance,
            end_time,
            now=timezone.now(),
            via_topup=True,
            aggregated=balance.parent_id is not None or balance.children.exists(),
        )
    redeem = dict(
        pin=pin,
        balance=balance,
        subscriber=subscription.subscriber,
        actor=actor,
        channel=channel,
        ip_address=ip_address,
        request_id=request_id,
        expected_amount=amount,
        allow_replay=True,
    )
    if end_time is None:
        return card_redeem(**redeem)  # its own transaction
    failure: CardError | None = None
    with transaction.atomic():
        try:
            redemption = card_redeem(**redeem)
        except CardError as error:
            # card_redeem rolled its own work back and recorded the failure for the audit and
            # the lockout: let that record commit with this block, then report the error.
            failure = error
        else:
            if not redemption.replayed:
                balance_change_end(
                    balance_id=balance.pk,
                    end_time=end_time,
                    via_topup=True,
                    actor=actor,
                    channel=channel,
                    reason=f"Top-up with card {redemption.card.serial}",
                    request_id=request_id,
                )
    if failure is not None:
        raise failure
    return redemption


@transaction.atomic
def card_reverse(*, card_id: int, reason: str, actor=None) -> LedgerEntry:
    """Reverse a redeemed card: compensating ledger entry, card marked reversed and blocked."""
    card = TopUpCard.objects.select_for_update().get(pk=card_id)
    if card.reversed_at is not None:
        raise AlreadyRedeemed("This card's redemption has already been reversed.")
    if card.activated_at is None or card.ledger_entry_id is None:
        raise BadData("Only a redeemed card can be reversed.")
    reversal = ledger_entry_reverse(
        entry_id=card.ledger_entry_id, reason=reason, actor=actor, channel=Channel.ADMIN
    )
    card.reversed_at = reversal.created_at
    card.blocked = True
    card.save(update_fields=["reversed_at", "blocked"])
    CardEvent.objects.create(
        kind=CardEventKind.REVERSED,
        card=card,
        serial=card.serial,
        actor=actor,
        subscriber=card.activated_by,
        channel=Channel.ADMIN,
        changes={
            "reason": reason,
            "amount": str(card.amount),
            "currency": card.currency,
            "reversal_entry": reversal.pk,
            "blocked": [False, True],
        },
    )
    return reversal


def entry_reverse(*, entry_id: int, reason: str, actor=None) -> LedgerEntry:
    """Reverse a top-up or redemption entry; a card's redemption also blocks the card."""
    card_id = TopUpCard.objects.filter(ledger_entry_id=entry_id).values_list("pk", flat=True)
    card_id = card_id.first()
    if card_id is not None:
        return card_reverse(card_id=card_id, reason=reason, actor=actor)
    return ledger_entry_reverse(entry_id=entry_id, reason=reason, actor=actor)


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
