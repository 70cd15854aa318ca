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
