"""Card batches: each generation's parameters, live figures and links to its cards."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from cards.models import CardBatch
from cards.selectors import batch_figures, batches_visible_to
from common.admin import ReadOnlyAdminMixin
from common.formats import format_amount

from .display import cards_text
from .downloads import batch_download, download_offered


@admin.register(CardBatch)
class CardBatchAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Batches are made by Generate Top-Up Cards, never by hand."""

    list_display = [
        "__str__",
        "amount_text",
        "pin_length",
        "reseller",
        "expires_at",
        "created_by",
        "created_at",
    ]
    list_select_related = ["reseller", "created_by"]
    fields = [
        "serials",
        "series",
        "quantity_text",
        "amount_text",
        "pin_length",
        "reseller",
        "expires_at",
        "dormant",
        "created_by",
        "created_at",
        "cards_link",
    ]
    readonly_fields = fields
    change_form_template = "admin/cards/cardbatch/change_form.html"

    class Media:
        css = {"all": ["cards/admin.css"]}

    def get_queryset(self, request):
        return batches_visible_to(request.user)

    def has_view_permission(self, request, obj=None):
        # Whoever may see or generate cards may see the batches they come from.
        user = request.user
        return (
            super().has_view_permission(request, obj)
            or user.has_perm("cards.view_topupcard")
            or user.has_perm("cards.add_topupcard")
        )

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    @admin.display(description="Amount", ordering="amount")
    def amount_text(self, batch):
        return f"{format_amount(batch.amount, 2)} {batch.currency}"

    @admin.display(description="Quantity", ordering="quantity")
    def quantity_text(self, batch):
        return cards_text(batch.quantity)

    @admin.display(description="Serial numbers")
    def serials(self, batch):
        return f"{batch.first_serial} … {batch.last_serial}"

    @admin.display(description="Cards")
    def cards_link(self, batch):
        url = reverse("admin:cards_topupcard_changelist") + f"?batch={batch.pk}"
        return format_html('<a href="{}">Show the cards of this batch</a>', url)

    def get_urls(self):
        return [
            path(
                "<int:pk>/download/",
                self.admin_site.admin_view(self.download_view),
                name="cards_cardbatch_download",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        batch = self.get_object(request, object_id)
        extra_context = dict(extra_context or {})
        if batch is not None:
            extra_context["figures"] = batch_figures(batch)
            extra_context["download_offered"] = download_offered(request, batch)
            extra_context["with_pins"] = request.user.has_perm("cards.view_pin")
        return super().change_view(request, object_id, form_url, extra_context)

    def download_view(self, request, pk):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_view_permission(request):
            raise PermissionDenied
        batch = get_object_or_404(self.get_queryset(request), pk=pk)
        return batch_download(request, batch)
