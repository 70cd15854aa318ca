"""Generate a batch of cards: sequential serials, unique PINs, all or nothing (docs/cards.md)."""

import datetime as dt
import hmac
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from cards import pins
from cards.currencies import currency_refusal
from cards.events import batch_generated_event
from cards.exceptions import CardPermissionDenied, GenerationError
from cards.models import CardBatch, TopUpCard
from cards.models.formats import (
    CURRENCY_FORMAT,
    CURRENCY_MESSAGE,
    MAX_CARD_NUMBER,
    PIN_MAX_LENGTH,
    PIN_MIN_LENGTH,
    SERIES_FORMAT,
    SERIES_MESSAGE,
)
from cards.services.scope import check_reseller_scope, check_series_owner, series_claim
from cards.sql import generation as sql
from common.formats import count_text
from subscribers.models import Reseller

logger = logging.getLogger(__name__)

MAX_BATCH_QUANTITY = 1_000_000
# Live cards of one PIN length may fill at most this share of the PIN space (docs/cards.md).
PIN_SPACE_SHARE = 10_000
_CHUNK = 5_000
# Cards moved from the staging table per statement (PostgreSQL): the progress steps.
_INSERT_SLICE = 50_000
# A PIN space too full to find free PINs is refused before anything is written (pin_space_check);
# this bound only stops a loop that could not end.
_MAX_REPLACEMENT_ROUNDS = 100
NO_FREE_PINS = "No free PINs could be found for this batch: choose a longer PIN."

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class GenerationResult:
    batch: CardBatch
    pins: list[str]
    """The new PINs in serial order, for the one-time download. Never logged, never stored."""


def _validate_generation(
    *, series, quantity, amount, currency, pin_length, expires_at
) -> tuple[Decimal, str]:
    if not isinstance(series, str) or not SERIES_FORMAT.fullmatch(series):
        raise GenerationError(SERIES_MESSAGE, field="series")
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
    currency = (currency or "").strip().upper() if isinstance(currency, str) else ""
    if not CURRENCY_FORMAT.fullmatch(currency):
        raise GenerationError(CURRENCY_MESSAGE, field="currency")
    refusal = currency_refusal(currency)
    if refusal:
        raise GenerationError(refusal, field="currency")
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
            f"{pin_length}-digit PINs would become guessable: at most "
            f"{count_text(capacity, 'live card')} may share that length (1 in "
            f"{PIN_SPACE_SHARE:,} of the PIN space) and {live:,} "
            f"{'exists' if live == 1 else 'exist'} already. Choose a longer PIN or a smaller "
            "quantity.",
            field="pin_length",
        )


def _lock_series(series: str, *, reseller, actor) -> int:
    """Lock the series for this transaction (claiming it for the reseller if new) and return its
    next free number."""
    try:
        series_claim(actor=actor, series=series, reseller=reseller)
    except CardPermissionDenied as error:
        raise GenerationError(error.message, field="series") from None
    highest = TopUpCard.objects.filter(series=series).aggregate(top=Max("number"))["top"]
    return (highest or 0) + 1


def _fresh_pins(length: int, count: int, taken: set[str]) -> list[str]:
    """`count` new PINs, none in `taken`; each is added to `taken` (in place: a collision late in
    a million-card batch must not copy the set)."""
    result: list[str] = []
    while len(result) < count:
        pin = pins.generate_pin(length)
        if pin not in taken:
            taken.add(pin)
            result.append(pin)
    return result


def _unique_pins(length: int, count: int) -> list[str]:
    return _fresh_pins(length, count, set())


def _card_rows(
    batch: CardBatch,
    pin_list: list[str],
    progress: Progress | None,
    *,
    start: int = 0,
    stop: int | None = None,
) -> Iterable[tuple]:
    """The batch's cards (those of `pin_list[start:stop]`) as rows of `sql.CARD_COLUMNS`' values.

    The per-row work is the cost of a million-card batch: keys are looked up once and the
    constant columns bound to locals.
    """
    digest_key = pins.digest_keys()[0]
    encrypt = pins.pin_encrypter()
    digest = hmac.digest
    series, first, amount, currency = batch.series, batch.first_number, batch.amount, batch.currency
    length, reseller, expires = batch.pin_length, batch.reseller_id, batch.expires_at
    dormant = batch.dormant
    batch_id, created = batch.pk, batch.created_at
    total = len(pin_list)
    for offset in range(start, total if stop is None else stop):
        pin = pin_list[offset]
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
            dormant,
            batch_id,
            created,
        )
        if progress and (offset + 1) % _CHUNK == 0:
            progress(offset + 1, total)


def _staged_rows(first: int, pin_list: list[str]) -> Iterable[tuple]:
    """(number, digest, encrypted PIN, last four digits): what the staging table holds."""
    digest_key = pins.digest_keys()[0]
    encrypt = pins.pin_encrypter()
    digest = hmac.digest
    for offset, pin in enumerate(pin_list):
        yield first + offset, digest(digest_key, pin.encode(), "sha256"), encrypt(pin), pin[-4:]


def _replace(batch: CardBatch, pin_list: list[str], numbers: list[int]) -> None:
    """New PINs for the cards `numbers`, in `pin_list` and in the staging table. A new PIN may
    be taken too, or equal another of the batch: the next insert skips it again."""
    fresh = _fresh_pins(batch.pin_length, len(numbers), set())
    for number, pin in zip(numbers, fresh, strict=True):
        pin_list[number - batch.first_number] = pin
    sql.restage_cards(
        [(number, *row[1:]) for number, row in zip(numbers, _staged_rows(0, fresh), strict=True)]
    )


def _write_staged(batch: CardBatch, pin_list: list[str], progress: Progress | None) -> int:
    """PostgreSQL, beside existing cards: stage the batch, move it over in slices and give the
    few cards whose PIN was taken new ones. Returns how many PINs were replaced."""
    first, total = batch.first_number, len(pin_list)
    sql.stage_cards(_staged_rows(first, pin_list))
    skipped: list[int] = []
    for start in range(0, total, _INSERT_SLICE):
        stop = min(start + _INSERT_SLICE, total)
        skipped += sql.insert_staged_cards(batch, first=first + start, last=first + stop - 1)
        if progress:
            progress(stop - len(skipped), total)
    replaced = 0
    for _ in range(_MAX_REPLACEMENT_ROUNDS):
        if not skipped:
            if progress:
                progress(total, total)
            return replaced
        replaced += len(skipped)
        _replace(batch, pin_list, skipped)
        skipped = sql.insert_staged_cards(batch, numbers=skipped)
    raise GenerationError(NO_FREE_PINS, field="pin_length")


def _write_chunked(batch: CardBatch, pin_list: list[str], progress: Progress | None) -> int:
    """Other databases: per chunk, look the PINs up and replace those taken, then insert. The
    first write of the transaction already holds the database's write lock (SQLite), so no card
    can take a PIN between the look-up and the insert. Returns how many PINs were replaced."""
    total, length = len(pin_list), batch.pin_length
    digest_key = pins.digest_keys()[0]
    in_batch = set(pin_list)
    replaced = 0
    for start in range(0, total, _CHUNK):
        stop = min(start + _CHUNK, total)
        for _ in range(_MAX_REPLACEMENT_ROUNDS):
            by_digest = {
                hmac.digest(digest_key, pin_list[i].encode(), "sha256"): i
                for i in range(start, stop)
            }
            taken = TopUpCard.objects.filter(pin_digest__in=list(by_digest)).values_list(
                "pin_digest", flat=True
            )
            clashing = [by_digest[bytes(d)] for d in taken]
            if not clashing:
                break
            fresh = _fresh_pins(length, len(clashing), in_batch)
            for index, pin in zip(clashing, fresh, strict=True):
                pin_list[index] = pin
            replaced += len(clashing)
        else:
            raise GenerationError(NO_FREE_PINS, field="pin_length")
        rows = _card_rows(batch, pin_list, None, start=start, stop=stop)
        TopUpCard.objects.bulk_create(
            [TopUpCard(**dict(zip(sql.CARD_COLUMNS, row, strict=True))) for row in rows]
        )
        if progress:
            progress(stop, total)
    return replaced


def _write_cards(batch: CardBatch, pin_list: list[str], progress: Progress | None) -> int:
    """Write the batch's cards, giving new PINs to those whose PIN another card has (a collision
    costs about the colliding cards, not the batch). Returns how many PINs were replaced."""
    if connection.vendor != "postgresql":
        return _write_chunked(batch, pin_list, progress)
    if not TopUpCard.objects.filter(pin_length=batch.pin_length).exists():
        # Into an empty table only a batch generated meanwhile can hold one of these PINs: one
        # COPY straight into the table, and the staged path only if that happens.
        try:
            with transaction.atomic():
                sql.copy_cards(_card_rows(batch, pin_list, progress))
        except IntegrityError:
            pass
        else:
            if progress:
                progress(len(pin_list), len(pin_list))
            return 0
    return _write_staged(batch, pin_list, progress)


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
        check_reseller_scope(actor=actor, reseller=reseller)
        check_series_owner(actor=actor, series=series, reseller=reseller)
    except CardPermissionDenied as error:
        raise GenerationError(error.message, field=error.field) from None
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
    dormant: bool = False,
    actor=None,
    progress: Progress | None = None,
) -> GenerationResult:
    """Generate `quantity` cards with sequential serials: all of them or none. `dormant` cards
    redeem only once their box is recorded as delivered (cards.services.delivery)."""
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
    first_number = _lock_series(series, reseller=reseller, actor=actor)
    if first_number + quantity - 1 > MAX_CARD_NUMBER:
        raise GenerationError(
            f"Series {series} has room for only "
            f"{count_text(MAX_CARD_NUMBER - first_number + 1, 'more card')}.",
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
        dormant=bool(dormant),
        created_by=actor,
    )
    pin_list = _unique_pins(pin_length, quantity)
    replaced = _write_cards(batch, pin_list, progress)
    if replaced:
        logger.info("Batch %s: replaced %d PINs that other cards already had", batch.pk, replaced)
    batch_generated_event(batch=batch, actor=actor)
    return GenerationResult(batch=batch, pins=pin_list)
