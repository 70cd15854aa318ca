import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Case, CharField, F, Q, Value, When
from django.db.models.functions import Cast, Concat, LPad
from django.utils import timezone

from common.formats import count_text
from subscribers.models import Reseller, Subscriber
from wallets.models import LedgerEntry

SERIAL_NUMBER_DIGITS = 9
MAX_CARD_NUMBER = 10**SERIAL_NUMBER_DIGITS - 1
PIN_MIN_LENGTH = 5
PIN_MAX_LENGTH = 20
PIN_DEFAULT_LENGTH = 12

# The formats of a series and of a currency code (docs/cards.md), for every check of them: the
# generation service, the import, the Advanced Search, the database constraint, the reports.
# Match with `fullmatch` (a `$` would let a trailing newline through).
SERIES_MAX_DIGITS = 6
SERIES_FORMAT = re.compile(rf"[0-9]{{1,{SERIES_MAX_DIGITS}}}")
SERIES_MESSAGE = f"Series must be 1 to {SERIES_MAX_DIGITS} digits."
CURRENCY_FORMAT = re.compile(r"[A-Z]{3}")
CURRENCY_MESSAGE = "Currency must be a three-letter code such as USD."


def validate_series(value: str) -> None:
    if not SERIES_FORMAT.fullmatch(value):
        raise ValidationError(SERIES_MESSAGE, code="series")


def validate_currency(value: str) -> None:
    """Three capital letters: callers upper-case what people type before checking it."""
    if not CURRENCY_FORMAT.fullmatch(value):
        raise ValidationError(CURRENCY_MESSAGE, code="currency")


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


def format_serial(series: str, number: int) -> str:
    return f"{series}-{number:0{SERIAL_NUMBER_DIGITS}d}"


def serial_expression() -> Concat:
    """`format_serial` in SQL, for statements that write or export serials without loading cards."""
    return Concat(
        F("series"),
        Value("-"),
        LPad(Cast("number", CharField()), SERIAL_NUMBER_DIGITS, Value("0")),
        output_field=CharField(),
    )


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


class CardJobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Done"
    FAILED = "failed", "Failed"


class CardJobKind(models.TextChoices):
    GENERATE = "generate", "Generation"
    MASS_EDIT = "mass_edit", "Mass Edit"
    DELETE_ALL = "delete_all", "Delete all"
    IMPORT = "import", "Import"


SELECTION_AT = "selection_at"
"""Key of a Mass Edit / Delete all job's `result`: when its selection was written (CardJobCard)."""


class CardJob(models.Model):
    """Card work done in the background by the task worker, with its progress: a generated batch,
    or a Mass Edit / Delete all of a selection too large for one request.

    A generation runs in one transaction: a worker killed mid-way leaves no card. A Mass Edit or
    Delete all works in chunks (`CardJobCard`), each committed with its count in `done`: a worker
    killed mid-way leaves exactly `done` cards done, and resuming does the rest. Either shows as
    interrupted once its heartbeat is older than GENERATION_JOB_STALE_SECONDS.
    """

    kind = models.CharField(
        max_length=10, choices=CardJobKind.choices, default=CardJobKind.GENERATE
    )
    status = models.CharField(
        max_length=10, choices=CardJobStatus.choices, default=CardJobStatus.QUEUED
    )
    params = models.JSONField(help_text="The request, as the operator confirmed it.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField()
    batch = models.OneToOneField(
        "CardBatch", on_delete=models.SET_NULL, null=True, blank=True, related_name="job"
    )
    error = models.TextField(blank=True)
    result = models.JSONField(
        default=dict, blank=True, help_text="What a Mass Edit / Delete all changed, per field."
    )
    task_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField("Created on", default=timezone.now)
    started_at = models.DateTimeField("Started", null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField("Finished", null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "background job"

    def __str__(self) -> str:
        cards = count_text(self.total, "card")
        if self.kind == CardJobKind.MASS_EDIT:
            return f"Mass Edit of {cards}"
        if self.kind == CardJobKind.DELETE_ALL:
            return f"Delete all of {cards}"
        if self.kind == CardJobKind.IMPORT:
            verb = "Import" if self.params.get("stage") == "import" else "Check"
            rows = count_text(self.total, "row")
            return f"{verb} of {self.params.get('file_name') or 'a file'} ({rows})"
        return f"Generation of {cards} in series {self.params.get('series')}"

    @property
    def is_interrupted(self) -> bool:
        if self.status != CardJobStatus.RUNNING:
            return False
        beat = self.heartbeat_at or self.started_at or self.created_at
        stale = dt.timedelta(seconds=settings.GENERATION_JOB_STALE_SECONDS)
        return timezone.now() - beat > stale

    @property
    def snapshot_taken(self) -> bool:
        """A Mass Edit / Delete all whose selection is written: its chunks may have run."""
        return SELECTION_AT in (self.result or {})

    @property
    def left(self) -> int:
        """Cards not done yet (each chunk adds what it settled to `done` as it commits)."""
        return max(self.total - self.done, 0)

    @property
    def percent(self) -> int:
        if self.status == CardJobStatus.SUCCEEDED:
            return 100
        return int(100 * self.done / self.total) if self.total else 0


class CardJobCard(models.Model):
    """A card of a Mass Edit / Delete all job's selection not done yet (docs/cards.md, Background
    jobs). The job's first run writes the ids of the selection the operator confirmed, once;
    each chunk then removes its ids in the transaction that changes its cards, so what is left
    is exactly what is still to do. Not a foreign key to the card: a card deleted meanwhile by
    someone else must not take its row (nor block its deletion)."""

    pk = models.CompositePrimaryKey("job_id", "card_id")
    # The primary key's index (job, card) serves every query: no second index on the job.
    job = models.ForeignKey(CardJob, on_delete=models.CASCADE, related_name="+", db_index=False)
    card_id = models.BigIntegerField()

    class Meta:
        verbose_name = "card of a background job"

    def __str__(self) -> str:
        return f"card {self.card_id} of job {self.job_id}"


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


class CardEventKind(models.TextChoices):
    GENERATED = "generated", "Batch generated"
    EDITED = "edited", "Edited"
    BLOCKED = "blocked", "Blocked"
    UNBLOCKED = "unblocked", "Unblocked"
    DELETED = "deleted", "Deleted"
    REDEEMED = "redeemed", "Redeemed"
    REDEEM_FAILED = "redeem_failed", "Failed redemption"
    PIN_REVEALED = "pin_revealed", "PIN revealed"
    EXPORTED = "exported", "Exported"
    IMPORTED = "imported", "Imported"
    REVERSED = "reversed", "Reversed"
    PINS_CHECKED = "pins_checked", "PINs checked"
    DELIVERED = "delivered", "Delivered (woken)"
    PRINT_ORDERED = "print_ordered", "Print ordered"
    PRINT_DOWNLOADED = "print_downloaded", "Print file downloaded"


class CardEvent(models.Model):
    """Audit record. The serial is kept so the history outlives a deleted card."""

    kind = models.CharField(max_length=16, choices=CardEventKind.choices)
    card = models.ForeignKey(
        TopUpCard, on_delete=models.SET_NULL, null=True, blank=True, related_name="events"
    )
    serial = models.CharField(max_length=20, blank=True, db_index=True)
    batch = models.ForeignKey(
        CardBatch, on_delete=models.SET_NULL, null=True, blank=True, related_name="events"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    subscriber = models.ForeignKey(
        Subscriber, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    channel = models.CharField(max_length=8, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField("Time", default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Brute-force lockout and the global failure budget count recent failed redemptions
            # per subscriber, per client IP and per API client.
            models.Index(fields=["kind", "created_at"], name="cardevent_kind_time"),
            models.Index(
                fields=["subscriber", "created_at"],
                condition=Q(kind="redeem_failed"),
                name="cardevent_fail_subscriber",
            ),
            models.Index(
                fields=["ip_address", "created_at"],
                condition=Q(kind="redeem_failed"),
                name="cardevent_fail_ip",
            ),
            models.Index(
                fields=["actor", "created_at"],
                condition=Q(kind="redeem_failed"),
                name="cardevent_fail_actor",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.serial} at {self.created_at:%Y-%m-%d %H:%M:%S}"


# --- printing houses, print orders and deliveries (docs/printing.md) ---------------------------


class Printer(models.Model):
    """A printing house and the OpenPGP public key its print files are encrypted to. The key was
    checked when it was registered (cards.openpgp) and is checked again for every order."""

    name = models.CharField(max_length=100, unique=True)
    contact = models.CharField(max_length=200, blank=True)
    public_key = models.TextField(help_text="ASCII-armored OpenPGP public key.")
    fingerprint = models.CharField(max_length=64, unique=True)
    key_description = models.CharField("Key", max_length=100)
    key_expires_at = models.DateTimeField("Key expires", null=True, blank=True)
    active = models.BooleanField(
        default=True, help_text="Only active printers are offered for new print orders."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField("Registered on", default=timezone.now)

    class Meta:
        ordering = ["name"]
        verbose_name = "printing house"

    def __str__(self) -> str:
        return self.name


class PrintOrder(models.Model):
    """The print file of a serial range (a batch, or part of one series), made by the worker and
    kept only encrypted to the printer's key (PrintOrderChunk)."""

    printer = models.ForeignKey(Printer, on_delete=models.PROTECT, related_name="orders")
    key_fingerprint = models.CharField(
        max_length=64, help_text="The key the file is encrypted to, as it was when ordered."
    )
    layout = models.CharField(max_length=20)
    batch = models.ForeignKey(
        CardBatch, on_delete=models.SET_NULL, null=True, blank=True, related_name="print_orders"
    )
    series = models.CharField(max_length=SERIES_MAX_DIGITS)
    first_number = models.PositiveBigIntegerField()
    last_number = models.PositiveBigIntegerField()
    reseller = models.ForeignKey(
        Reseller,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The series' owner: its staff see the order.",
    )
    status = models.CharField(
        max_length=10, choices=CardJobStatus.choices, default=CardJobStatus.QUEUED
    )
    expected = models.PositiveIntegerField(help_text="Cards to print when it was ordered.")
    rows = models.PositiveIntegerField(null=True, blank=True, help_text="Cards printed.")
    size = models.PositiveBigIntegerField(null=True, blank=True, help_text="Encrypted bytes.")
    sha256 = models.CharField("SHA-256 of the encrypted file", max_length=64, blank=True)
    error = models.TextField(blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField("Ordered on", default=timezone.now)
    started_at = models.DateTimeField("Started", null=True, blank=True)
    finished_at = models.DateTimeField("Finished", null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("download_printorder", "Can download encrypted print files")]
        constraints = [
            models.CheckConstraint(
                condition=Q(first_number__gte=1) & Q(last_number__gte=F("first_number")),
                name="printorder_range",
            ),
        ]

    def __str__(self) -> str:
        return f"Print order {self.pk}: {self.first_serial} … {self.last_serial}"

    @property
    def first_serial(self) -> str:
        return format_serial(self.series, self.first_number)

    @property
    def last_serial(self) -> str:
        return format_serial(self.series, self.last_number)


class PrintOrderChunk(models.Model):
    """A slice of a print order's encrypted file, in order: a large file is written and
    downloaded a slice at a time, never whole in memory."""

    order = models.ForeignKey(PrintOrder, on_delete=models.CASCADE, related_name="chunks")
    position = models.PositiveIntegerField()
    data = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["order", "position"], name="printorderchunk_position")
        ]

    def __str__(self) -> str:
        return f"{self.order_id}/{self.position}"


class CardDelivery(models.Model):
    """A box of dormant cards recorded as delivered: the cards of the range that were dormant
    woke up (redeemable from then on), each with a `delivered` event."""

    series = models.CharField(max_length=SERIES_MAX_DIGITS)
    first_number = models.PositiveBigIntegerField()
    last_number = models.PositiveBigIntegerField()
    reference = models.CharField(
        max_length=100, help_text="The box's label or the delivery note's number."
    )
    woken = models.PositiveIntegerField(help_text="Dormant cards of the range that woke up.")
    reseller = models.ForeignKey(
        Reseller, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    delivered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    delivered_at = models.DateTimeField("Recorded on", default=timezone.now)

    class Meta:
        ordering = ["-delivered_at", "-id"]
        verbose_name = "delivered box"
        verbose_name_plural = "delivered boxes"

    def __str__(self) -> str:
        first = format_serial(self.series, self.first_number)
        last = format_serial(self.series, self.last_number)
        return f"{self.reference}: {first} … {last}"
