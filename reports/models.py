"""Admin entries for the finance reports.

Reports read across cards and wallets, so they live in their own app rather than in either
(dependencies keep pointing one way: subscribers ← wallets ← cards ← reports). These models
have no table (`managed = False`, never queried): each one gives the admin index a row in the
"Reports" section and a `view` permission that decides who may open that report.
"""

from django.db import models


class ReportEntry(models.Model):
    class Meta:
        abstract = True
        managed = False
        default_permissions = ("view",)

    def __str__(self) -> str:
        return self._meta.verbose_name


class LiabilityReport(ReportEntry):
    class Meta(ReportEntry.Meta):
        managed = False
        db_table = "reports_liability_no_table"
        verbose_name = "liability"
        verbose_name_plural = "liability"


class RedemptionReport(ReportEntry):
    class Meta(ReportEntry.Meta):
        managed = False
        db_table = "reports_redemptions_no_table"
        verbose_name = "redemptions"
        verbose_name_plural = "redemptions"


class BreakageReport(ReportEntry):
    class Meta(ReportEntry.Meta):
        managed = False
        db_table = "reports_breakage_no_table"
        verbose_name = "breakage"
        verbose_name_plural = "breakage"


class ExpiringReport(ReportEntry):
    class Meta(ReportEntry.Meta):
        managed = False
        db_table = "reports_expiring_no_table"
        verbose_name = "expiring soon"
        verbose_name_plural = "expiring soon"


class BalanceReport(ReportEntry):
    class Meta(ReportEntry.Meta):
        managed = False
        db_table = "reports_balances_no_table"
        verbose_name = "balances"
        verbose_name_plural = "balances"


class RollForwardReport(ReportEntry):
    class Meta(ReportEntry.Meta):
        managed = False
        db_table = "reports_rollforward_no_table"
        verbose_name = "liability roll-forward"
        verbose_name_plural = "liability roll-forward"


class CardMovementDay(models.Model):
    """The cards' liability movements of one closed day (reports.selectors.history), added up
    per currency, reseller, series, flags and kind: what every dated report sums instead of
    replaying every card's history on each page view (reports/README.md, "Speed").

    Written only by `reports.services.movement_summary_extend`, for whole days that closed
    before `CardMovementSummary.until`; a closed day's movements never change afterwards."""

    day = models.DateField()
    currency = models.CharField(max_length=3)
    reseller_id = models.BigIntegerField(null=True, blank=True)
    """The reseller's id then (no foreign key: a figure outlives its reseller's row)."""
    series = models.CharField(max_length=6)
    blocked = models.BooleanField()
    dormant = models.BooleanField(default=False)
    """Generated dormant and not delivered yet (docs/printing.md)."""
    kind = models.CharField(max_length=12)
    cards = models.IntegerField(help_text="Signed: cards in (+) or out (−) of liability.")
    amount = models.DecimalField(max_digits=16, decimal_places=2, help_text="Signed face value.")

    class Meta:
        indexes = [models.Index(fields=["day"], name="cardmovementday_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.kind} {self.amount} {self.currency}"


class CardMovementSummary(models.Model):
    """One row: the days before `until` are summarized in CardMovementDay. No row: none are,
    and the reports replay the whole history (correct, only slower)."""

    until = models.DateField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"summarized before {self.until}"


class RedemptionDay(models.Model):
    """The cards redeemed on one closed day, added up per currency, reseller, series and channel
    of the redemption: what the Redemptions report sums instead of reading every redeemed card
    (reports/README.md, "Speed"). A redeemed card never changes again but for its reversal, so a
    day's count and value are final when the day closes. `reversed_value` is appended: the
    run that summarizes the day of a reversal adds a row under the redemption's day (cards and
    value 0), so no row is ever rewritten.

    Written only by `reports.services.day_summaries.redemption_summary_extend`."""

    day = models.DateField(help_text="The day of the redemption, in the site's time zone.")
    currency = models.CharField(max_length=3)
    reseller_id = models.BigIntegerField(null=True, blank=True)
    """The card's reseller (no foreign key: a figure outlives its reseller's row)."""
    series = models.CharField(max_length=6)
    channel = models.CharField(max_length=8, blank=True)
    """The channel of the redemption's ledger entry (empty: the card has none)."""
    cards = models.IntegerField()
    value = models.DecimalField(max_digits=16, decimal_places=2)
    reversed_value = models.DecimalField(max_digits=16, decimal_places=2)

    class Meta:
        indexes = [models.Index(fields=["day"], name="redemptionday_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.cards} redeemed {self.value} {self.currency}"


class LedgerFlowDay(models.Model):
    """The ledger entries of one closed day, added up per currency, balance template and
    reseller: what the Balances report's movements sum instead of reading the ledger. Ledger
    entries are never changed or deleted, so a closed day's sums are final.

    The reseller is the one the wallet's subscriber had when the day was summarized (docs/
    reports.md, "Balances"). Written only by
    `reports.services.day_summaries.ledger_summary_extend`."""

    day = models.DateField(help_text="The day of the entries, in the site's time zone.")
    currency = models.CharField(max_length=10)
    template_id = models.BigIntegerField()
    reseller_id = models.BigIntegerField(null=True, blank=True)
    entries = models.IntegerField()
    net = models.DecimalField(max_digits=30, decimal_places=6)
    topups = models.DecimalField(max_digits=30, decimal_places=6)
    redemptions = models.DecimalField(max_digits=30, decimal_places=6)
    adjustments_credit = models.DecimalField(max_digits=30, decimal_places=6)
    adjustments_debit = models.DecimalField(max_digits=30, decimal_places=6)
    reversals = models.DecimalField(max_digits=30, decimal_places=6)
    openings = models.DecimalField(max_digits=30, decimal_places=6)

    class Meta:
        indexes = [models.Index(fields=["day"], name="ledgerflowday_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.entries} entries {self.net} {self.currency}"


class DaySummary(models.Model):
    """How far one daily summary goes (`name`: "redemptions" or "ledger"): the days before
    `until` are summarized, in `time_zone`. No row, or another time zone than the site's now:
    the report computes every day live (correct, only slower)."""

    name = models.CharField(max_length=16, unique=True)
    until = models.DateField()
    time_zone = models.CharField(max_length=64)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} summarized before {self.until} ({self.time_zone})"
