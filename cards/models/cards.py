"""Top-up cards, their series and the batches that made them, and the card status rules."""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import models
from django.db.models import Case, Q, Value, When
from django.utils import timezone

from common.formats import count_text
from subscribers.models import Reseller, Subscriber
from wallets.models import LedgerEntry

from .formats import (
    MAX_CARD_NUMBER,
    PIN_MAX_LENGTH,
    PIN_MIN_LENGTH,
    SERIES_FORMAT,
    SERIES_MAX_DIGITS,
    format_serial,
)


class CardStatus(models.TextChoices):
    NEW = "new", "New"
    ACTIVATED = "activated", "Activated"
    EXPIRED = "expired", "Expired"
    BLOCKED = "blocked", "Blocked"
    DORMANT = "dormant", "Dormant (not delivered)"


@dataclass(frozen=True)
class _StatusRule:
    status: str
    holds: Q
    fails: Q
    """The negation, spelled as the partial indexes' conditions are so the planner can use them."""
    test: Callable[["TopUpCard"], bool]
    """`holds` for a card in memory."""


def _status_rules(at: dt.datetime) -> tuple[_StatusRule, ...]:
    """The card status (docs/cards.md), derived at the instant `at`: the first rule that holds
    gives the status, and a card none holds is new. The one definition of it: the filters, the
    annotation, the property, the export and the batch figures are all made from these rules."""
    return (
        _StatusRule(
            CardStatus.ACTIVATED,
            Q(activated_at__isnull=False),
            Q(activated_at__isnull=True),
            lambda card: card.activated_at is not None,
        ),
        # Before blocked and expired: a card never delivered was never in circulation, so
        # nothing else about it matters to a subscriber or to finance yet (docs/cards.md).
        _StatusRule(
            CardStatus.DORMANT, Q(dormant=True), Q(dormant=False), lambda card: card.dormant
        ),
        _StatusRule(
            CardStatus.BLOCKED, Q(blocked=True), Q(blocked=False), lambda card: card.blocked
        ),
        _StatusRule(
            CardStatus.EXPIRED,
            Q(expires_at__lte=at),
            Q(expires_at__gt=at),
            lambda card: card.expires_at <= at,
        ),
    )


def status_conditions(at: dt.datetime | None = None) -> dict[str, Q]:
    """For each status (in CardStatus order), the condition a card of that status meets at `at`
    (default: now)."""
    conditions: dict[str, Q] = {}
    earlier_fail = Q()
    for rule in _status_rules(at or timezone.now()):
        conditions[rule.status] = earlier_fail & rule.holds
        earlier_fail &= rule.fails
    conditions[CardStatus.NEW] = earlier_fail
    return {status: conditions[status] for status in CardStatus}


def card_status(card: "TopUpCard", at: dt.datetime) -> str:
    """The status of a card in memory at `at`."""
    for rule in _status_rules(at):
        if rule.test(card):
            return rule.status
    return CardStatus.NEW


class TopUpCardQuerySet(models.QuerySet):
    def activated(self):
        return self.with_status(CardStatus.ACTIVATED)

    def blocked(self):
        return self.with_status(CardStatus.BLOCKED)

    def expired(self, at=None):
        return self.with_status(CardStatus.EXPIRED, at=at)

    def new(self, at=None):
        return self.with_status(CardStatus.NEW, at=at)

    def with_status(self, status: str, at=None):
        return self.filter(status_conditions(at)[CardStatus(status)])

    def annotate_status(self, at=None):
        at = at or timezone.now()
        return self.annotate(
            status=Case(
                *(When(rule.holds, then=Value(rule.status)) for rule in _status_rules(at)),
                default=Value(CardStatus.NEW),
                output_field=models.CharField(),
            )
        )


class CardSeries(models.Model):
    """One row per series: generation locks it so two batches never share a serial, and it names
    the reseller whose cards the series holds."""

    series = models.CharField(max_length=SERIES_MAX_DIGITS, primary_key=True)
    reseller = models.ForeignKey(
        Reseller,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The reseller that first used the series (none: cards without a reseller). "
        "Only its cards go into the series (docs/cards.md).",
    )

    class Meta:
        verbose_name_plural = "card series"

    def __str__(self) -> str:
        return self.series


class CardBatch(models.Model):
    """One generation run: who, when, with which parameters, and which serials it made.

    Verbose names follow JeraSoft's Generate Top-Up Cards window (docs/cards.md)."""

    series = models.CharField(max_length=SERIES_MAX_DIGITS)
    first_number = models.PositiveBigIntegerField()
    quantity = models.PositiveIntegerField()
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3)
    pin_length = models.PositiveSmallIntegerField("PIN Length")
    reseller = models.ForeignKey(
        Reseller, on_delete=models.PROTECT, null=True, blank=True, related_name="batches"
    )
    expires_at = models.DateTimeField("Expiry Date")
    dormant = models.BooleanField(
        "Dormant until delivered",
        default=False,
        help_text="Generated dormant: its cards redeem only once their box is recorded as "
        "delivered (docs/cards.md).",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField("Created on", default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "card batches"

    def __str__(self) -> str:
        return f"{self.first_serial} … {self.last_serial} ({count_text(self.quantity, 'card')})"

    @property
    def first_serial(self) -> str:
        return format_serial(self.series, self.first_number)

    @property
    def last_serial(self) -> str:
        return format_serial(self.series, self.first_number + self.quantity - 1)


class TopUpCard(models.Model):
    """A prepaid top-up card. The PIN is stored only as a keyed digest and an encrypted copy.

    Verbose names follow JeraSoft's Top-up Cards section (its columns, Advanced Search and
    Generate window): Expiry Date, PIN Length, Activation Date, Created on."""

    series = models.CharField(max_length=SERIES_MAX_DIGITS)
    number = models.PositiveBigIntegerField()
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3)
    pin_digest = models.BinaryField(max_length=32, unique=True)
    pin_encrypted = models.BinaryField(max_length=128)
    pin_length = models.PositiveSmallIntegerField("PIN Length")
    pin_last4 = models.CharField("PIN last 4 digits", max_length=4)
    reseller = models.ForeignKey(
        Reseller, on_delete=models.PROTECT, null=True, blank=True, related_name="cards"
    )
    expires_at = models.DateTimeField("Expiry Date", db_index=True)
    blocked = models.BooleanField(default=False)
    # db_default too: a writer that does not know the column (an older app server during a
    # rolling deploy, a bulk loader) makes live cards, never a NULL.
    dormant = models.BooleanField(
        default=False,
        db_default=False,
        help_text="Not delivered yet: cannot be redeemed until its box is recorded as delivered.",
    )
    activated_at = models.DateTimeField("Activation Date", null=True, blank=True, db_index=True)
    activated_by = models.ForeignKey(
        Subscriber,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="cards",
        verbose_name="Client",
        help_text="The subscriber who activated the card.",
    )
    reversed_at = models.DateTimeField(
        "Reversed on",
        null=True,
        blank=True,
        help_text="When an operator reversed the redemption (card blocked).",
    )
    ledger_entry = models.OneToOneField(
        LedgerEntry, on_delete=models.PROTECT, null=True, blank=True, related_name="card"
    )
    batch = models.ForeignKey(
        CardBatch, on_delete=models.PROTECT, null=True, blank=True, related_name="cards"
    )
    created_at = models.DateTimeField("Created on", default=timezone.now)

    objects = TopUpCardQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "top-up card"
        permissions = [
            ("view_pin", "Can reveal and export card PINs"),
            ("redeem_card", "Can redeem a top-up card in the client panel"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["series", "number"], name="card_serial_unique"),
            models.CheckConstraint(
                condition=Q(series__regex=rf"^{SERIES_FORMAT.pattern}$"), name="card_series_digits"
            ),
            models.CheckConstraint(
                condition=Q(number__gte=1) & Q(number__lte=MAX_CARD_NUMBER),
                name="card_number_range",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="card_amount_positive"),
            models.CheckConstraint(
                condition=Q(pin_length__gte=PIN_MIN_LENGTH) & Q(pin_length__lte=PIN_MAX_LENGTH),
                name="card_pin_length_range",
            ),
            models.CheckConstraint(
                condition=(Q(activated_at__isnull=True) & Q(activated_by__isnull=True))
                | (Q(activated_at__isnull=False) & Q(activated_by__isnull=False)),
                name="card_activation_complete",
            ),
        ]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="card_newest_first"),
            models.Index(fields=["amount"], name="card_amount"),
            models.Index(fields=["currency"], name="card_currency"),
            models.Index(fields=["reseller", "-created_at", "-id"], name="card_reseller_newest"),
            models.Index(
                fields=["expires_at"],
                condition=Q(activated_at__isnull=True),
                name="card_open_expiry",
            ),
            # Exactly the "blocked" status, so its list and capped count are index-only.
            models.Index(
                fields=["-created_at", "-id"],
                condition=Q(blocked=True, activated_at__isnull=True),
                name="card_blocked",
            ),
            # The "dormant" status's list, and the boxes still waiting for delivery.
            models.Index(
                fields=["-created_at", "-id"],
                condition=Q(dormant=True, activated_at__isnull=True),
                name="card_dormant",
            ),
        ]

    def __str__(self) -> str:
        return self.serial

    @property
    def serial(self) -> str:
        return format_serial(self.series, self.number)

    @property
    def status(self) -> str:
        return card_status(self, timezone.now())

    @property
    def masked_pin(self) -> str:
        hidden = "•" * (self.pin_length - 4) + self.pin_last4
        return " ".join(hidden[i : i + 4] for i in range(0, len(hidden), 4))
