from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from common.formats import format_amount
from subscribers.models import Group, Subscription

from .durations import validate_period

AMOUNT_DIGITS = 24
AMOUNT_PLACES = 6
# A card serial or an external voucher reference; an operator's or partner's reason.
MAX_VOUCHER_LENGTH = 64
MAX_REASON_LENGTH = 255


class Wallet(models.Model):
    """The balances of one subscription or one group (exactly one of the two)."""

    subscription = models.OneToOneField(
        Subscription, on_delete=models.PROTECT, null=True, blank=True, related_name="wallet"
    )
    group = models.OneToOneField(
        Group, on_delete=models.PROTECT, null=True, blank=True, related_name="wallet"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(subscription__isnull=False) & Q(group__isnull=True))
                | (Q(subscription__isnull=True) & Q(group__isnull=False)),
                name="wallet_has_one_owner",
            )
        ]

    def __str__(self) -> str:
        owner = self.subscription or self.group
        return f"Wallet of {owner}"


class BalanceKind(models.TextChoices):
    SIMPLE = "simple", "Simple"
    PERIODIC = "periodic", "Periodic"
    VIRTUAL = "virtual", "Virtual (aggregated)"
    METER = "meter", "Amount meter"


class BalanceTemplate(models.Model):
    """A balance definition: kind, currency or unit, precision and the adjustment rules."""

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=10, choices=BalanceKind.choices)
    currency = models.CharField(
        max_length=10, help_text="ISO 4217 currency code, or a unit such as MB or MIN."
    )
    precision = models.PositiveSmallIntegerField(
        default=2, help_text="Decimal places an amount may have (0–6)."
    )
    end_adjust_allowed = models.BooleanField(
        default=True, help_text="End Date Adjustment Type: Allow (rule E1)."
    )
    is_private = models.BooleanField(default=False)
    # NULL, not "", is "no period": the check constraint below reads it so.
    period = models.CharField(  # noqa: DJ001
        max_length=40,
        null=True,
        blank=True,
        validators=[validate_period],
        help_text=(
            "Periodic balances only: the length of one interval, an ISO 8601 duration of at "
            "least one day, e.g. P1M (a calendar month), P1W, P30D."
        ),
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(precision__gte=0) & Q(precision__lte=AMOUNT_PLACES),
                name="template_precision_0_6",
            ),
            models.CheckConstraint(
                condition=(Q(kind=BalanceKind.PERIODIC) & Q(period__isnull=False))
                | (~Q(kind=BalanceKind.PERIODIC) & Q(period__isnull=True)),
                name="template_period_iff_periodic",
                violation_error_message=(
                    "A periodic template needs a period; other kinds have none."
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()}, {self.currency})"


class Balance(models.Model):
    """One balance in a wallet. Its amount changes only through services.ledger.balance_apply."""

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="balances")
    resource_id = models.PositiveIntegerField()
    template = models.ForeignKey(BalanceTemplate, on_delete=models.PROTECT, related_name="+")
    amount = models.DecimalField(
        max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, default=Decimal("0")
    )
    start_time = models.DateTimeField(default=timezone.now)
    end_time = models.DateTimeField(null=True, blank=True)
    parent = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="children",
        help_text="The aggregated balance above this one (e.g. the group's G/L balance).",
    )
    is_main = models.BooleanField(
        default=False, help_text="The balance that card redemptions credit."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["wallet", "resource_id"]
        permissions = [
            ("topup_balance", "Can top up a balance (REST API)"),
            ("adjust_balance", "Can adjust a balance's amount or validity"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["wallet", "resource_id"], name="balance_resource_unique_in_wallet"
            ),
            models.UniqueConstraint(
                fields=["wallet"], condition=Q(is_main=True), name="one_main_balance_per_wallet"
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="balance_amount_non_negative"),
            models.CheckConstraint(
                condition=Q(end_time__isnull=True) | Q(end_time__gt=models.F("start_time")),
                name="balance_end_after_start",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.wallet} #{self.resource_id}"

    def is_live(self, at=None) -> bool:
        at = at or timezone.now()
        return self.start_time <= at and (self.end_time is None or at < self.end_time)


class BalanceIntervalQuerySet(models.QuerySet):
    def live(self, at):
        """The intervals containing the moment `at`: a periodic balance's live one."""
        return self.filter(start_time__lte=at, end_time__gt=at)


class BalanceInterval(models.Model):
    """One period of a periodic balance; only the interval containing "now" is live."""

    balance = models.ForeignKey(Balance, on_delete=models.CASCADE, related_name="intervals")
    start_time = models.DateTimeField()
    end_time = models.DateTimeField()
    amount = models.DecimalField(
        max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, default=Decimal("0")
    )

    objects = BalanceIntervalQuerySet.as_manager()

    class Meta:
        ordering = ["balance", "start_time"]
        constraints = [
            models.UniqueConstraint(fields=["balance", "start_time"], name="interval_unique_start"),
            models.CheckConstraint(
                condition=Q(end_time__gt=models.F("start_time")), name="interval_end_after_start"
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="interval_amount_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.balance} [{self.start_time:%Y-%m-%d} – {self.end_time:%Y-%m-%d}]"


class LedgerKind(models.TextChoices):
    # Lazy: the panel's history shows them in the subscriber's language; elsewhere English.
    OPENING = "opening", _("Opening balance")
    TOPUP = "topup", _("Top-up")
    REDEMPTION = "redemption", _("Card redemption")
    ADJUSTMENT = "adjustment", _("Adjustment")
    REVERSAL = "reversal", _("Reversal")


class Channel(models.TextChoices):
    PANEL = "panel", "Client panel"
    REST = "rest", "REST API"
    ADMIN = "admin", "Admin"
    SYSTEM = "system", "System"


class LedgerEntry(models.Model):
    """An immutable record of one change of a balance amount."""

    balance = models.ForeignKey(Balance, on_delete=models.PROTECT, related_name="entries")
    interval = models.ForeignKey(
        BalanceInterval, on_delete=models.PROTECT, null=True, blank=True, related_name="entries"
    )
    amount = models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    kind = models.CharField(max_length=12, choices=LedgerKind.choices)
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.SYSTEM)
    voucher = models.CharField(
        max_length=MAX_VOUCHER_LENGTH,
        blank=True,
        help_text="Card serial or external voucher reference (never a PIN).",
    )
    reason = models.CharField(max_length=MAX_REASON_LENGTH, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    request_id = models.CharField(max_length=64, blank=True)
    reverses = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="reversed_by"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "ledger entries"
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="ledger_amount_not_zero"),
        ]
        indexes = [models.Index(fields=["balance", "-created_at"], name="ledger_balance_time")]
        permissions = [("reverse_ledgerentry", "Can reverse a top-up or card redemption")]

    def __str__(self) -> str:
        amount = format_amount(self.amount, self.balance.template.precision, signed=True)
        return f"{self.get_kind_display()} {amount} on {self.balance}"


class VoucherMode(models.TextChoices):
    CARD = "card", "Card PIN (our cards are redeemed)"
    EXTERNAL = "external", "External voucher reference (trusted voucher system)"


class ApiClient(models.Model):
    """A partner system calling the REST API as a Django user (token or HTTP Basic)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_client"
    )
    voucher_mode = models.CharField(
        max_length=8, choices=VoucherMode.choices, default=VoucherMode.CARD
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.user} ({self.get_voucher_mode_display()})"


class BalanceEventKind(models.TextChoices):
    TOPUP = "topup", "Top-up"
    REDEMPTION = "redemption", "Card redemption"
    ADJUSTMENT = "adjustment", "Amount adjustment"
    START_TIME = "start_time", "Start time changed"
    END_TIME = "end_time", "End time changed"
    REVERSAL = "reversal", "Reversal"


class BalanceEvent(models.Model):
    """Audit record of one change of a balance (amount or validity): who, when, what, why.

    Append-only. A change that propagates to the aggregated balances above (rules S6, E8) records
    one event per balance it changed.
    """

    balance = models.ForeignKey(Balance, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=12, choices=BalanceEventKind.choices)
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.SYSTEM)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    ledger_entry = models.ForeignKey(
        LedgerEntry, on_delete=models.PROTECT, null=True, blank=True, related_name="events"
    )
    changes = models.JSONField(default=dict, blank=True)
    reason = models.CharField(max_length=MAX_REASON_LENGTH, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["balance", "-created_at"], name="balanceevent_balance_time")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {self.balance} at {self.created_at:%Y-%m-%d %H:%M:%S}"


class ExternalVoucher(models.Model):
    """An external voucher reference, single-use per API client (external voucher mode).

    Written in the same transaction as the credit: the unique constraint makes a concurrent
    second use wait for the first to commit and then fail, rolling its credit back.
    """

    client = models.ForeignKey(ApiClient, on_delete=models.PROTECT, related_name="vouchers")
    reference = models.CharField(max_length=MAX_VOUCHER_LENGTH)
    balance = models.ForeignKey(Balance, on_delete=models.PROTECT, related_name="+")
    amount = models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    ledger_entry = models.OneToOneField(
        LedgerEntry, on_delete=models.PROTECT, related_name="external_voucher"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["client", "reference"], name="external_voucher_unique_per_client"
            )
        ]

    def __str__(self) -> str:
        return f"{self.reference} ({self.client})"


class IdempotencyKey(models.Model):
    """The outcome of a successful adjustment, kept under the caller's Idempotency-Key."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(
        max_length=64, help_text="SHA-256 of the request (path and fields)."
    )
    ledger_entry = models.ForeignKey(
        LedgerEntry, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_unique_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.user})"


class RateCounter(models.Model):
    """Requests counted per key (an API client, a client address) for throttling and for the
    stop on repeated wrong credentials: shared by every app server process, one row per key.

    A sliding window approximated from two fixed slots of one period each: the count of the
    current slot plus the previous slot's count weighted by how much of it the window still
    covers. On PostgreSQL the table is UNLOGGED (migration 0003): no WAL, so counting costs no
    disk flush; a database crash empties it, which only forgets recent counts.
    """

    key = models.CharField(max_length=200, primary_key=True)
    slot = models.BigIntegerField(help_text="The current slot: seconds since the epoch // period.")
    previous = models.PositiveIntegerField(default=0)
    current = models.PositiveIntegerField(default=0)
    allowed = models.BooleanField(default=True, help_text="Whether the last hit was allowed.")

    def __str__(self) -> str:
        return self.key
