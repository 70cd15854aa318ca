"""The "Reports" section of the admin index: one entry per report, each a single read-only page.

Each report is a ModelAdmin on a table-less model (reports/models.py) whose only URL is its
"changelist", so the admin index links to it and its `view` permission guards it. The view is
thin: permission check, filter form, one call into its builder in reports/tables/, then an HTML
page or a CSV file.
"""

import csv
from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseBadRequest
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.text import slugify

from common.admin import ReadOnlyAdminMixin
from common.replicas import stale_ok_view
from subscribers.selectors import staff_reseller_id

from . import forms
from .models import (
    BalanceReport,
    BreakageReport,
    ExpiringReport,
    LiabilityReport,
    RedemptionReport,
    RollForwardReport,
)
from .tables.balances import balances_report
from .tables.breakage import breakage_report
from .tables.expiring import expiring_report
from .tables.liability import liability_report
from .tables.redemptions import redemptions_report
from .tables.rollforward import rollforward_report
from .tables.section import csv_cells

# Spreadsheet programs run a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_safe(text: str, numeric: bool) -> str:
    if not numeric and text.startswith(_FORMULA_START):
        return "'" + text
    return text


class ReportAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    form_class: type[forms.ReportForm]
    build = staticmethod(liability_report)
    description = ""

    def get_urls(self):
        name = f"{self.opts.app_label}_{self.opts.model_name}_changelist"
        # Report figures may be a few seconds old: read from a replica (docs/replicas.md).
        view = self.admin_site.admin_view(stale_ok_view(self.report_view))
        return [path("", view, name=name)]

    def report_view(self, request):
        # admin_view only checks "active staff": the report's own permission is checked here.
        if not self.has_view_permission(request):
            raise PermissionDenied
        day = forms.today()
        params = {k: v for k, v in request.GET.items() if k not in {"format", "table"}}
        data = {**self.form_class.defaults(day), **params}
        form = self.form_class(data, scope_reseller_id=staff_reseller_id(request.user))
        result = self.build(form) if form.is_valid() else None
        if request.GET.get("format") == "csv":
            return self.csv_response(form, result, request.GET.get("table", ""))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": self.opts.verbose_name_plural.capitalize(),
            "description": self.description,
            "form": form,
            "result": result,
            "presets": [
                (label, "?" + urlencode({**data, **values}))
                for label, values in self.form_class.presets(day)
            ],
            "csv_query": urlencode({**data, "format": "csv"}),
        }
        return TemplateResponse(request, "admin/reports/report.html", context)

    def csv_response(self, form, result, table: str):
        if result is None:
            errors = "; ".join(
                f"{name}: {' '.join(messages)}" for name, messages in form.errors.items()
            )
            return HttpResponseBadRequest(
                f"Invalid filters: {errors}", content_type="text/plain; charset=utf-8"
            )
        section = next((s for s in result.sections if s.key == table), result.sections[0])
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        name = slugify(self.opts.verbose_name_plural)
        if len(result.sections) > 1:
            name = f"{name}-{section.key}"
        filename = f"{name}.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        writer = csv.writer(response)
        writer.writerow([column.label for column in section.columns])
        # The page's total lines too, after the rows, as on the page.
        for row in [*section.rows, *section.totals]:
            writer.writerow(
                _csv_safe(cell, column.numeric)
                for cell, column in zip(csv_cells(section, row), section.columns, strict=True)
            )
        return response


@admin.register(LiabilityReport)
class LiabilityReportAdmin(ReportAdmin):
    form_class = forms.LiabilityForm
    build = staticmethod(liability_report)
    description = (
        "Face value of the cards owed at the end of the chosen day: issued by then and not yet "
        "redeemed, expired, written off or deleted. Blocked cards are still owed and included "
        "(column “of which blocked”), and so are dormant cards, issued but not redeemable until "
        "their printed box is recorded as delivered (column “of which dormant”). Every card "
        "counts as it was then (expiry, reseller, block, delivery), "
        "replayed from its audit history, so a past day's figure never changes."
    )


@admin.register(RedemptionReport)
class RedemptionReportAdmin(ReportAdmin):
    form_class = forms.RedemptionForm
    build = staticmethod(redemptions_report)
    description = (
        "Cards redeemed in the period, by the time of redemption, with the channel the subscriber "
        "used (client panel or REST API). Redemptions later reversed are included."
    )


@admin.register(BreakageReport)
class BreakageReportAdmin(ReportAdmin):
    form_class = forms.BreakageForm
    build = staticmethod(breakage_report)
    description = (
        "Cards that reached their expiry date without being redeemed, booked in the period in "
        "which they expired and never moved afterwards. An expiry moved later shows in the "
        "period of the change: to the past or to now as “written off”, an expired card given "
        "a later expiry as “reinstated”."
    )


@admin.register(ExpiringReport)
class ExpiringReportAdmin(ReportAdmin):
    form_class = forms.ExpiringForm
    build = staticmethod(expiring_report)
    description = (
        "Cards that can be redeemed now and expire within 7, 30 or 90 days (each window includes "
        "the shorter ones). Dormant cards, whose printed box is not recorded as delivered yet, "
        "cannot be redeemed: they are not in the first table but in their own below it."
    )


@admin.register(BalanceReport)
class BalanceReportAdmin(ReportAdmin):
    form_class = forms.BalanceForm
    build = staticmethod(balances_report)
    description = (
        "Subscribers' balances now, per currency (or unit) and balance template, and the ledger "
        "movements of the period: top-ups, card redemptions, adjustments and reversals."
    )


@admin.register(RollForwardReport)
class RollForwardReportAdmin(ReportAdmin):
    form_class = forms.RollForwardForm
    build = staticmethod(rollforward_report)
    description = (
        "How the liability on unredeemed cards moved in each period: opening liability, cards "
        "issued, redeemed, redemptions reversed, breakage, written off, reinstated, deleted and "
        "moved between resellers, closing liability, and the check that they add up."
    )
