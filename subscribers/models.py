from django.conf import settings
from django.db import models


class Reseller(models.Model):
    """A company that owns cards ("Company" in the JeraSoft screens)."""

    name = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class StaffReseller(models.Model):
    """Scopes a staff user to one reseller: they see and edit only that reseller's cards."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_reseller"
    )
    reseller = models.ForeignKey(Reseller, on_delete=models.CASCADE, related_name="staff")

    class Meta:
        verbose_name = "reseller-scoped staff user"

    def __str__(self) -> str:
        return f"{self.user} → {self.reseller}"


class Group(models.Model):
    """A group of subscriptions with its own wallet (G/L balances aggregated above members')."""

    name = models.CharField(max_length=200, unique=True)
    external_id = models.CharField(max_length=100, unique=True, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Subscriber(models.Model):
    """A client: the person or company that redeems cards."""

    name = models.CharField(max_length=200, db_index=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="subscriber",
        help_text="Login for the client panel.",
    )
    reseller = models.ForeignKey(
        Reseller, on_delete=models.PROTECT, null=True, blank=True, related_name="subscribers"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # One of settings.LANGUAGES, chosen in the panel (not choices here: adding a language must
    # not need a migration); empty follows the browser's language (docs/panel.md, "Languages").
    # db_default too: a writer that does not know the column (an older app server mid-deploy, a
    # bulk loader) makes subscribers who follow their browser, never a NULL.
    language = models.CharField(
        max_length=10,
        blank=True,
        default="",
        db_default="",
        help_text="Language of the client panel; empty: the browser's.",
    )

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class Subscription(models.Model):
    subscriber = models.ForeignKey(
        Subscriber, on_delete=models.PROTECT, related_name="subscriptions"
    )
    external_id = models.CharField(max_length=100, unique=True)
    group = models.ForeignKey(
        Group, on_delete=models.SET_NULL, null=True, blank=True, related_name="subscriptions"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.external_id} ({self.subscriber})"


class AccessNumber(models.Model):
    """An MSISDN of a subscription; `AccessNumber+…` in REST paths."""

    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="access_numbers"
    )
    number = models.CharField(max_length=32, unique=True)

    class Meta:
        ordering = ["number"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(number__regex=r"^\+?[0-9]{3,31}$"),
                name="access_number_digits",
            )
        ]

    def __str__(self) -> str:
        return self.number
