"""The admin sections a staff user limited to one reseller (StaffReseller) may use.

Cards, batches, jobs and card events are scoped by the cards app's selectors. Every other section
says here how its rows belong to a reseller (`reseller_lookup`, the path from the model to the
reseller's id): a scoped user lists, opens, changes and deletes only that reseller's rows, and the
foreign keys they can choose in a form are limited the same way (a subscription only for their
own subscribers, a balance only in their own subscribers' wallets). Sections whose rows belong to
no reseller or to all (`reseller_lookup = None`: staff links, API clients, balance templates,
subscriber groups, users) are closed to them, whatever permissions they were given.
"""

from django.contrib import admin

from .selectors import staff_reseller_id


class ResellerScopedAdmin(admin.ModelAdmin):
    reseller_lookup: str | None = None

    def _closed_to(self, request) -> bool:
        return self.reseller_lookup is None and staff_reseller_id(request.user) is not None

    def get_queryset(self, request):
        rows = super().get_queryset(request)
        reseller_id = staff_reseller_id(request.user)
        if reseller_id is None:
            return rows
        if self.reseller_lookup is None:
            return rows.none()
        return rows.filter(**{self.reseller_lookup: reseller_id})

    def has_module_permission(self, request):
        return not self._closed_to(request) and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return not self._closed_to(request) and super().has_view_permission(request, obj)

    def has_add_permission(self, request):
        return not self._closed_to(request) and super().has_add_permission(request)

    def has_change_permission(self, request, obj=None):
        return not self._closed_to(request) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not self._closed_to(request) and super().has_delete_permission(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if staff_reseller_id(request.user) is not None:
            related = self.admin_site._registry.get(db_field.related_model)
            if isinstance(related, ResellerScopedAdmin) and related.reseller_lookup is not None:
                kwargs["queryset"] = related.get_queryset(request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
