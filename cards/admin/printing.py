"""Printing houses, print orders and delivered boxes (docs/printing.md).

Each custom page follows Django's own recipe: permission, form, one service call, message,
redirect. Printing houses are the platform's (closed to reseller-scoped staff); print orders and
deliveries belong to the reseller whose series they are.
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from cards.exceptions import DeliveryError, PrintError
from cards.jobs.printing import print_order_start
from cards.models import CardDelivery, Printer, PrintOrder
from cards.models.jobs import CardJobStatus
from cards.openpgp import group_fingerprint
from cards.print_forms import DeliveryForm, PrinterForm, PrintOrderForm
from cards.print_layouts import LAYOUTS
from cards.selectors import batches_visible_to
from cards.services.delivery import cards_deliver, delivery_check, dormant_in_range
from cards.services.printing import print_order_chunks, print_order_download, printer_register
from common.http import client_ip
from subscribers.admin_scoping import ResellerScopedAdmin

from .display import cards_text


def _render(model_admin, request, context):
    return TemplateResponse(
        request,
        "admin/cards/printing/form.html",
        {**model_admin.admin_site.each_context(request), "opts": model_admin.opts, **context},
    )


def _form_error(form, error) -> None:
    form.add_error(error.field if error.field in form.fields else None, error.message)


@admin.register(Printer)
class PrinterAdmin(ResellerScopedAdmin):
    reseller_lookup = None  # the platform's: closed to reseller-scoped staff
    list_display = ["name", "fingerprint_text", "key_description", "key_expires_at", "active"]
    fields = [
        "name",
        "contact",
        "active",
        "fingerprint_text",
        "key_description",
        "key_expires_at",
        "public_key",
        "created_by",
        "created_at",
    ]
    # A printer's key never changes: a new key is a new printing house (and a new fingerprint
    # to check with them), so no order goes to a key nobody checked.
    readonly_fields = [
        "fingerprint_text",
        "key_description",
        "key_expires_at",
        "public_key",
        "created_by",
        "created_at",
    ]

    @admin.display(description="Fingerprint", ordering="fingerprint")
    def fingerprint_text(self, printer):
        return group_fingerprint(printer.fingerprint)

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = PrinterForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                printer = printer_register(
                    name=data["name"],
                    contact=data["contact"],
                    public_key=data["public_key"],
                    actor=request.user,
                )
            except PrintError as error:
                _form_error(form, error)
            else:
                if not data["active"]:
                    Printer.objects.filter(pk=printer.pk).update(active=False)
                self.log_addition(request, printer, [{"added": {}}])
                messages.success(
                    request,
                    f"{printer.name} registered with key {group_fingerprint(printer.fingerprint)}"
                    " — check this fingerprint with the printing house by phone before the "
                    "first order.",
                )
                return HttpResponseRedirect(
                    reverse("admin:cards_printer_change", args=[printer.pk])
                )
        return _render(
            self,
            request,
            {
                "title": "Register a printing house",
                "form": form,
                "submit_label": "Register",
                "intro": "Paste the printing house's OpenPGP public key. Refused: private keys, "
                "expired or revoked keys, keys without an encryption subkey, RSA under 3072 "
                "bits, DSA and ElGamal.",
            },
        )


@admin.register(PrintOrder)
class PrintOrderAdmin(ResellerScopedAdmin):
    reseller_lookup = "reseller_id"
    list_display = [
        "__str__",
        "printer",
        "layout",
        "status",
        "rows",
        "requested_by",
        "created_at",
        "file",
    ]
    list_select_related = ["printer", "requested_by"]
    list_filter = ["status"]
    fields = [
        "printer",
        "fingerprint_text",
        "layout_text",
        "batch",
        "serials",
        "expected",
        "status",
        "error",
        "rows",
        "size",
        "sha256",
        "requested_by",
        "created_at",
        "started_at",
        "finished_at",
        "file",
    ]
    readonly_fields = fields
    change_form_template = "admin/cards/printorder/change_form.html"

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        # History, as a delivery is: which cards went to which printing house, in which file
        # (its SHA-256 is in the download events). Deleting a running order would also pull
        # the rows from under the worker writing it.
        return False

    @admin.display(description="Key fingerprint")
    def fingerprint_text(self, order):
        return group_fingerprint(order.key_fingerprint)

    @admin.display(description="Layout")
    def layout_text(self, order):
        layout = LAYOUTS.get(order.layout)
        return layout.label if layout else order.layout

    @admin.display(description="Serial numbers")
    def serials(self, order):
        return f"{order.first_serial} … {order.last_serial}"

    @admin.display(description="Encrypted file")
    def file(self, order):
        if order.status != CardJobStatus.SUCCEEDED:
            return "—"
        # The download itself is a POST from the order's page: an audited act, never a link a
        # crawler or a link preview follows.
        url = reverse("admin:cards_printorder_change", args=[order.pk])
        return format_html('<a href="{}">{} bytes: open to download</a>', url, f"{order.size:,}")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        order = self.get_object(request, object_id)
        extra_context = dict(extra_context or {})
        if (
            order is not None
            and order.status == CardJobStatus.SUCCEEDED
            and request.user.has_perm("cards.download_printorder")
        ):
            extra_context["download_url"] = reverse(
                "admin:cards_printorder_download", args=[order.pk]
            )
            extra_context["fingerprint"] = group_fingerprint(order.key_fingerprint)
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        return [
            path(
                "<int:pk>/download/",
                self.admin_site.admin_view(self.download_view),
                name="cards_printorder_download",
            ),
            *super().get_urls(),
        ]

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        batches = batches_visible_to(request.user)
        form = PrintOrderForm(request.POST or None, batches=batches)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                order = print_order_start(
                    printer=data["printer"],
                    layout=data["layout"],
                    batch=data["batch"],
                    series=data["series"],
                    first_number=data["first_number"],
                    last_number=data["last_number"],
                    actor=request.user,
                    ip_address=client_ip(request),
                )
            except PrintError as error:
                _form_error(form, error)
            else:
                messages.success(
                    request,
                    f"Print order {order.pk} of {cards_text(order.expected)} queued: the worker "
                    "encrypts it to "
                    f"{order.printer.name}'s key {group_fingerprint(order.key_fingerprint)}.",
                )
                return HttpResponseRedirect(
                    reverse("admin:cards_printorder_change", args=[order.pk])
                )
        return _render(
            self,
            request,
            {
                "title": "Order a print file",
                "form": form,
                "submit_label": "Order",
                "intro": "The file is made by the worker and stored encrypted to the printing "
                "house's key: nobody here can read it, and only holders of the download "
                "permission can fetch it. Redeemed, blocked and expired cards are left out.",
            },
        )

    def download_view(self, request, pk):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm("cards.download_printorder"):
            raise PermissionDenied
        order = get_object_or_404(self.get_queryset(request).select_related("printer"), pk=pk)
        try:
            chunks = print_order_download(
                order=order, actor=request.user, ip_address=client_ip(request)
            )
        except PrintError as error:
            messages.error(request, error.message)
            return HttpResponseRedirect(reverse("admin:cards_printorder_change", args=[pk]))
        response = StreamingHttpResponse(
            print_order_chunks(chunks), content_type="application/pgp-encrypted"
        )
        name = f"print-order-{order.pk}-{order.first_serial}.csv.gpg"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        response["Content-Length"] = str(order.size)
        response["Cache-Control"] = "no-store"
        return response


@admin.register(CardDelivery)
class CardDeliveryAdmin(ResellerScopedAdmin):
    reseller_lookup = "reseller_id"
    list_display = ["reference", "serials", "woken", "delivered_by", "delivered_at"]
    list_select_related = ["delivered_by"]
    fields = ["reference", "serials", "woken", "delivered_by", "delivered_at"]
    readonly_fields = fields
    search_fields = ["reference"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # a woken card stays woken: history

    @admin.display(description="Serial numbers")
    def serials(self, delivery):
        return str(delivery).split(": ", 1)[1]

    def add_view(self, request, form_url="", extra_context=None):
        """Record a delivered box: the range, then a confirmation naming how many dormant cards
        wake; the service refuses if that number changed meanwhile."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = DeliveryForm(request.POST or None)
        confirmation = ""
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                if "_confirm" in request.POST:
                    delivery = cards_deliver(
                        series=data["series"],
                        first_number=data["first_number"],
                        last_number=data["last_number"],
                        reference=data["reference"],
                        expected=data["expected"],
                        actor=request.user,
                    )
                else:
                    delivery_check(
                        series=data["series"],
                        first_number=data["first_number"],
                        last_number=data["last_number"],
                        reference=data["reference"],
                    )
                    count = dormant_in_range(
                        series=data["series"],
                        first_number=data["first_number"],
                        last_number=data["last_number"],
                        actor=request.user,
                    ).count()
                    if count == 0:
                        raise DeliveryError(
                            "No dormant card in this range: nothing to wake.", field="first_serial"
                        )
                    form = DeliveryForm(initial={**request.POST.dict(), "expected": count})
                    confirmation = (
                        f"{cards_text(count)} of this range will become redeemable now. "
                        "Confirm only if the box has arrived complete and sealed."
                    )
            except DeliveryError as error:
                if error.field == "first":
                    error.field = "first_serial"
                _form_error(form, error)
            else:
                if "_confirm" in request.POST:
                    messages.success(
                        request,
                        f"Box {delivery.reference}: {cards_text(delivery.woken)} woke up and "
                        "can be redeemed.",
                    )
                    return HttpResponseRedirect(reverse("admin:cards_carddelivery_changelist"))
        return _render(
            self,
            request,
            {
                "title": "Record a delivered box",
                "form": form,
                "confirmation": confirmation,
                "submit_label": "Wake these cards" if confirmation else "Check the range",
                "submit_name": "_confirm" if confirmation else "_check",
                "intro": "The dormant cards of the box's serial range become redeemable. Cards "
                "of the range that were never dormant, or are redeemed, stay as they are.",
            },
        )
