"""Top-up Cards: the JeraSoft table and a card's page. The other screens are in views.py."""

from django.conf import settings
from django.contrib import admin, messages
from django.db import OperationalError, connections, router, transaction
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from import_export.admin import ExportActionMixin, ImportMixin
from import_export.formats.base_formats import CSV, JSON, XLSX

from cards.events import export_action_event
from cards.exceptions import ImportRefused
from cards.forms import CardChangeForm
from cards.jobs.imports import import_job_start
from cards.jobs.runner import runs_in_background
from cards.models import TopUpCard
from cards.models.jobs import CardJobKind
from cards.resources import (
    TextColumnsXLSX,
    TopUpCardExportResource,
    TopUpCardImportResource,
)
from cards.selectors import card_history, cards_visible_to
from cards.services.importing.reading import count_rows
from cards.services.mass_edit import cards_mass_delete, cards_mass_update
from cards.services.scope import pin_import_refusal, pin_search_refusal
from common.database import limit_statement_time, statement_timed_out
from common.http import client_ip
from common.replicas import stale_ok_view
from subscribers.selectors import staff_reseller

from .changelist import CappedCountPaginator, CardChangeList
from .display import activated_text, created_text, status_badge
from .views import CardScreens

CSV_HELP = (
    "Export CSV writes PINs and serial numbers exactly as stored, for other systems. A "
    "spreadsheet drops a PIN's leading zero unless you open it with the PIN Code column as Text "
    "(Data → From Text/CSV); the Export action's XLSX keeps them as text."
)

# The Export action renders every row in memory (django-import-export): fine for what a person
# selects on screen, never for a whole series, which goes through the streamed CSV export.
EXPORT_ACTION_LIMIT = 10_000


def _import_failure_message(result, shown: int = 5) -> str:
    """Why a confirmed import wrote nothing, by row (never an exception's text: a database
    error names the clashing key, here a PIN's digest)."""
    reasons = [
        f"row {row.number}: " + " ".join(m for ms in row.error_dict.values() for m in ms)
        for row in result.invalid_rows
    ]
    reasons += [
        f"row {number}: a card with the same serial or PIN was written meanwhile"
        for number, _errors in result.row_errors()
    ]
    for base in result.base_errors:
        if isinstance(base.error, ImportRefused):
            return base.error.message  # says what was refused (cards.services.importing)
    if result.base_errors:
        reasons.append("the file could not be read")
    more = f" (and {len(reasons) - shown} more)" if len(reasons) > shown else ""
    return "Nothing was imported: " + "; ".join(reasons[:shown]) + more + "."


@admin.register(TopUpCard)
class TopUpCardAdmin(CardScreens, ImportMixin, ExportActionMixin, admin.ModelAdmin):
    form = CardChangeForm
    resource_classes = [TopUpCardExportResource]
    import_formats = [CSV, XLSX]
    # The import's audit is its `imported` card event (cards.events); the admin's per-object log
    # would be one LogEntry per card of the file, a million for a migration.
    skip_admin_log = True
    export_formats = [CSV, TextColumnsXLSX, JSON]
    show_change_form_export = False
    import_export_change_list_template = None  # our change_list.html carries the buttons
    list_display_links = ["serial_number"]
    list_select_related = ["reseller", "activated_by"]
    list_per_page = 20
    list_max_show_all = 0  # no "show all" on a million-row table
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    sortable_by: list[str] = []  # every column sort would be a full-table sort
    paginator = CappedCountPaginator
    empty_value_display = "—"
    fields = [
        "serial_number",
        "status_label",
        "amount_display",
        "pin_code",
        "reseller",
        "expires_at",
        "blocked",
        "activated",
        "batch",
        "created_on",
    ]
    change_list_template = "admin/cards/topupcard/change_list.html"
    change_form_template = "admin/cards/topupcard/change_form.html"

    class Media:
        css = {"all": ["cards/admin.css"]}
        js = ["cards/admin.js"]

    # --- the table ---------------------------------------------------------------------------

    def get_list_display(self, request):
        can_reveal = request.user.has_perm("cards.view_pin")

        @admin.display(description="PIN Code")
        def pin_code(card):
            if not can_reveal:
                return card.masked_pin
            return format_html(
                '<span class="card-pin" data-reveal-url="{}">{}</span> '
                '<button type="button" class="card-pin__reveal button">Reveal</button>',
                reverse("admin:cards_topupcard_reveal_pin", args=[card.pk]),
                card.masked_pin,
            )

        return [
            "status_label",
            "serial_number",
            "amount_display",
            pin_code,
            "reseller",
            "activated",
            "created_on",
        ]

    @admin.display(description="Status")
    def status_label(self, card):
        return status_badge(card)

    @admin.display(description="Serial Number")
    def serial_number(self, card):
        return card.serial

    @admin.display(description="Amount")
    def amount_display(self, card):
        return f"{card.amount} {card.currency}"

    @admin.display(description="PIN Code")
    def pin_code(self, card):
        return card.masked_pin

    @admin.display(description="Activated")
    def activated(self, card):
        return activated_text(card)

    @admin.display(description="Created on")
    def created_on(self, card):
        return created_text(card)

    def get_queryset(self, request):
        return cards_visible_to(request.user).order_by("-created_at", "-id")

    def get_changelist(self, request, **kwargs):
        return CardChangeList

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # Delete all goes through the audited service
        return actions

    # The list, its count and its pages may be a few seconds old (docs/replicas.md); its POSTs
    # (actions) read and write the primary.
    @method_decorator(stale_ok_view)
    def changelist_view(self, request, extra_context=None):
        extra_context = {
            "title": "Top-up Cards",
            **(extra_context or {}),
            "can_generate": self.has_add_permission(request),
            "can_mass_edit": self.has_change_permission(request),
            "can_export_pins": request.user.has_perm("cards.view_pin"),
            "can_import": self.has_import_permission(request)
            and pin_import_refusal(request.user) is None,
            "can_search_pins": pin_search_refusal(request.user) is None,
            "csv_help": CSV_HELP,
        }
        # The limit is set where the search runs: a replica, when one serves this page.
        database = router.db_for_read(TopUpCard)
        if request.method != "GET" or connections[database].vendor != "postgresql":
            # SQLite has no statement limit, and its transactions take the write lock at once
            # (IMMEDIATE): one around a read page would queue it behind any writer.
            return super().changelist_view(request, extra_context)
        try:
            with transaction.atomic(using=database):
                limit_statement_time(settings.CARD_SEARCH_TIMEOUT_MS, using=database)
                response = super().changelist_view(request, extra_context)
                # The page's queries run when it renders: inside the time limit, not after it.
                if hasattr(response, "render"):
                    response.render()
                return response
        except OperationalError as error:
            if not statement_timed_out(error):
                raise
        seconds = settings.CARD_SEARCH_TIMEOUT_MS / 1000
        messages.error(
            request,
            f"The search took longer than {seconds:g} seconds and was stopped. Narrow it (a "
            "series, a serial range, dates) and search again.",
        )
        request.card_search_stopped = True  # CardChangeList shows the search without rows
        return super().changelist_view(request, extra_context)

    # --- django-import-export: the Export action and the card import -----------------------

    def get_import_resource_classes(self, request):
        return [TopUpCardImportResource]

    def get_import_resource_kwargs(self, request, **kwargs):
        return {"user": request.user, "ip_address": client_ip(request)}

    def _import_refused(self, request):
        """Who may not import PINs never uploads a file (docs/reliability.md, "No PIN oracle")."""
        refusal = pin_import_refusal(request.user)
        if refusal is None or not self.has_import_permission(request):
            return None
        messages.error(request, refusal)
        return HttpResponseRedirect(reverse("admin:cards_topupcard_changelist"))

    def import_action(self, request, **kwargs):
        refused = self._import_refused(request)
        if refused is not None:
            return refused
        if int(request.META.get("CONTENT_LENGTH") or 0) > settings.FILE_UPLOAD_MAX_MEMORY_SIZE:
            # Only in-memory uploads (settings): a larger file would arrive as no file at all.
            limit = settings.FILE_UPLOAD_MAX_MEMORY_SIZE // (1024 * 1024)
            messages.error(request, f"The file is larger than {limit} MB: split it.")
            return HttpResponseRedirect(reverse("admin:cards_topupcard_import"))
        queued = self._import_in_background(request)
        if queued is not None:
            return queued
        response = super().import_action(request, **kwargs)
        self._forget_unconfirmable_upload(response)
        return response

    def _import_in_background(self, request):
        """A file of more than IMPORT_SYNC_LIMIT rows is checked by the worker: the request
        stores it (encrypted) and queues the check, and the job page shows the preview."""
        if request.method != "POST" or not self.has_import_permission(request):
            return None
        form = self.create_import_form(request)
        if not form.is_valid():
            return None
        upload = form.cleaned_data["import_file"]
        file_format = self.get_import_formats()[int(form.cleaned_data["format"])]
        kind = "xlsx" if file_format is XLSX else "csv"
        rows = count_rows(upload.chunks(), kind)  # in pieces: no copy of a large file
        upload.seek(0)
        if not runs_in_background(kind=CardJobKind.IMPORT, count=rows):
            return None
        try:
            job = import_job_start(
                chunks=upload.chunks(),
                file_format=kind,
                file_name=upload.name,
                rows=rows,
                actor=request.user,
                ip_address=client_ip(request),
            )
        except ImportRefused as error:
            messages.error(request, error.message)
            return HttpResponseRedirect(reverse("admin:cards_topupcard_import"))
        messages.info(
            request,
            f"The file has about {rows:,} rows: it is being checked in the background. This page "
            "shows the result; nothing is imported before you confirm it here.",
        )
        return HttpResponseRedirect(reverse("admin:cards_cardjob_change", args=[job.pk]))

    def _forget_unconfirmable_upload(self, response):
        """A preview that offers no confirmation (a bad row, an unreadable file) is never
        confirmed: its upload goes now rather than when it expires."""
        context = getattr(response, "context_data", None) or {}
        form = context.get("form")
        if context.get("confirm_form") is not None or not getattr(form, "cleaned_data", None):
            return
        name = getattr(form.cleaned_data.get("import_file"), "tmp_storage_name", None)
        if name:
            self.get_tmp_storage_class()(name=name).remove()

    def process_import(self, request, **kwargs):
        refused = self._import_refused(request)
        if refused is not None:
            return refused
        upload = self.get_tmp_storage_class()(name=request.POST.get("import_file_name", ""))
        if request.method == "POST" and not upload.exists():
            messages.error(
                request, "This preview has expired or was imported already: upload the file again."
            )
            return HttpResponseRedirect(reverse("admin:cards_topupcard_import"))
        return super().process_import(request, **kwargs)

    def process_result(self, result, request):
        if result.has_errors() or result.has_validation_errors():
            # Something changed since the preview (a card written meanwhile): all rolled back.
            messages.error(request, _import_failure_message(result))
            return HttpResponseRedirect(reverse("admin:cards_topupcard_changelist"))
        return super().process_result(result, request)

    def get_export_resource_kwargs(self, request, **kwargs):
        return {"user": request.user}

    def get_export_queryset(self, request):
        """The cards a person ticked (the action's `export_items`, each checked against what
        this user may see), and nothing else: the export page is reached only from the action,
        whose ticks come from a valid search (an invalid one lists no card). Without ticks the
        library would export every card the user sees."""
        if not request.POST.getlist("export_items"):
            return TopUpCard.objects.none()
        return self.get_queryset(request)

    def get_valid_export_item_pks(self, request):
        # The library's default lists every card in the table (a million choices); only the
        # posted ones that this user may see are valid.
        posted = [pk for pk in request.POST.getlist("export_items") if pk.isdigit()]
        return self.get_queryset(request).filter(pk__in=posted).values_list("pk", flat=True)

    def get_export_data(self, file_format, request, queryset, **kwargs):
        if queryset.order_by().count() > EXPORT_ACTION_LIMIT:
            raise ValueError(
                f"The Export action handles at most {EXPORT_ACTION_LIMIT:,} cards. Use "
                "“Export CSV”, which streams any number of cards."
            )
        export_action_event(
            file_format=file_format.get_title(),
            rows=queryset.order_by().count(),
            with_pins=request.user.has_perm("cards.view_pin"),
            actor=request.user,
        )
        return super().get_export_data(file_format, request, queryset, **kwargs)

    # --- one card's page: history, reveal, edits through the service ------------------------

    def get_readonly_fields(self, request, obj=None):
        readonly = [
            "serial_number",
            "status_label",
            "amount_display",
            "pin_code",
            "activated",
            "batch",
            "created_on",
        ]
        if obj is not None and obj.activated_at is not None:
            readonly += ["reseller", "expires_at", "blocked"]
        return readonly

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "reseller":
            scoped = staff_reseller(request.user)
            if scoped is not None:
                kwargs["queryset"] = type(scoped).objects.filter(pk=scoped.pk)
                kwargs["required"] = True
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.activated_at is not None:
            return False
        return super().has_delete_permission(request, obj)

    def add_view(self, request, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:cards_topupcard_generate"))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        card = self.get_object(request, object_id)
        extra_context = {"show_save_and_add_another": False, **(extra_context or {})}
        if card is not None:
            extra_context["card_history"] = card_history(card)[:100]
            extra_context["can_reveal"] = request.user.has_perm("cards.view_pin")
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        """Edits of one card go through the Mass Edit service: audited per field."""
        changes = {
            name: form.cleaned_data[name]
            for name in ("expires_at", "reseller", "blocked")
            if name in form.changed_data
        }
        if changes:
            cards_mass_update(
                cards=TopUpCard.objects.filter(pk=obj.pk), actor=request.user, **changes
            )

    def delete_model(self, request, obj):
        cards_mass_delete(cards=TopUpCard.objects.filter(pk=obj.pk), actor=request.user)

    def delete_queryset(self, request, queryset):
        cards_mass_delete(cards=queryset, actor=request.user)
