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

from cards import pins, sql
from cards.currencies import currency_refusal
from cards.events import batch_generated_event
from cards.exceptions import CardPermissionDenied, GenerationError
from cards.models import (
    CURRENCY_FORMAT,
    CURRENCY_MESSAGE,
    MAX_CARD_NUMBER,
    PIN_MAX_LENGTH,
    PIN_MIN_LENGTH,
    SERIES_FORMAT,
    SERIES_MESSAGE,
    CardBatch,
    TopUpCard,
)
from cards.services.scope import check_reseller_scope, check_series_owner, series_claim
from common.formats import count_text
from subscribers.models import Reseller

logger = logging.getLogger(__name__)

MAX_BATCH_QUANTITY = 1_000_000
# Live cards of one PIN length may fill at most this share of the PIN space (docs/cards.md).
PIN_SPACE_SHARE = 10_000
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


def _card_rows(batch: CardBatch, pin_list: list[str], progress: Progress | None) -> Iterable[tuple]:
    """The batch's cards as rows of `sql.CARD_COLUMNS`' values.

    The per-row work is the cost of a million-card batch: keys are looked up once and the
    constant columns bound to locals.
    """
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
        sql.copy_cards(_card_rows(batch, pin_list, progress))
    else:
        cards = (
            TopUpCard(**dict(zip(sql.CARD_COLUMNS, row, strict=True)))
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
    batch_generated_event(batch=batch, actor=actor)
    return GenerationResult(batch=batch, pins=pin_list)
