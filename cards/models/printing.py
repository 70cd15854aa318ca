"""Printing houses, print orders and deliveries of dormant cards (docs/printing.md)."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from subscribers.models import Reseller

from .cards import CardBatch
from .formats import SERIES_MAX_DIGITS, format_serial
from .jobs import CardJobStatus


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
