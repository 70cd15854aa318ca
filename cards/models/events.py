"""The card audit record. Its payloads (`changes`) are written only by cards/events.py."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from subscribers.models import Subscriber

from .cards import CardBatch, TopUpCard


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
