"""The audit trail of cards: read-only."""

from django.contrib import admin
from django.utils.html import format_html_join

from cards.models import CardEvent
from cards.selectors import events_visible_to
from common.admin import ReadOnlyAdminMixin

from .changelist import CappedCountPaginator, EstimatingChangeList


@admin.register(CardEvent)
class CardEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "created_at",
        "kind",
        "serial",
        "actor",
        "subscriber",
        "channel",
        "ip_address",
        "what_changed",
    ]
    list_select_related = ["actor", "subscriber"]
    list_filter = ["kind"]  # choices: no DISTINCT query
    search_fields = ["serial"]
    search_help_text = "Exact serial number, e.g. 3-004206576."
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    sortable_by: list[str] = []
    paginator = CappedCountPaginator
    fields = [
        "created_at",
        "kind",
        "serial",
        "card",
        "batch",
        "actor",
        "subscriber",
        "channel",
        "ip_address",
        "what_changed",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        return events_visible_to(request.user)

    def get_changelist(self, request, **kwargs):
        return EstimatingChangeList

    def get_search_results(self, request, queryset, search_term):
        # Exact match on the indexed column (the admin's "=serial" would compare UPPER(serial)).
        term = search_term.strip()
        return (queryset.filter(serial=term) if term else queryset), False

    @admin.display(description="What changed")
    def what_changed(self, event):
        changes = event.changes or {}
        if not isinstance(changes, dict):
            return str(changes)
        return format_html_join(
            "; ", "{}: {}", ((_label(k), _value(v)) for k, v in changes.items())
        )


def _label(key: str) -> str:
    return key.replace("_", " ")


def _value(value) -> str:
    """Counts with thousands separators, yes/no, and "before → after" for a changed field."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list) and len(value) == 2:
        return f"{_value(value[0])} → {_value(value[1])}"
    if value is None or value == "":
        return "—"
    return str(value)
