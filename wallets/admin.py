from django.contrib import admin

from .models import ApiClient, Balance, BalanceInterval, BalanceTemplate, LedgerEntry, Wallet


class BalanceInline(admin.TabularInline):
    model = Balance
    fields = ["resource_id", "template", "amount", "start_time", "end_time", "parent", "is_main"]
    readonly_fields = ["amount"]
    raw_id_fields = ["parent"]
    extra = 0
    show_change_link = True


@admin.register(Wallet)
class WalletAdmin(admin.ModelAdmin):
    list_display = ["__str__", "subscription", "group", "created_at"]
    list_select_related = ["subscription__subscriber", "group"]
    search_fields = ["subscription__external_id", "group__name"]
    raw_id_fields = ["subscription", "group"]
    inlines = [BalanceInline]


@admin.register(BalanceTemplate)
class BalanceTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "currency", "precision", "end_adjust_allowed", "is_private"]
    list_filter = ["kind"]
    search_fields = ["name"]


class BalanceIntervalInline(admin.TabularInline):
    model = BalanceInterval
    fields = ["start_time", "end_time", "amount"]
    readonly_fields = ["amount"]
    extra = 0


@admin.register(Balance)
class BalanceAdmin(admin.ModelAdmin):
    """The amount is read-only here: it changes only through the services, with a ledger entry."""

    list_display = ["__str__", "resource_id", "template", "amount", "start_time", "end_time"]
    list_select_related = ["wallet__subscription__subscriber", "wallet__group", "template"]
    search_fields = ["wallet__subscription__external_id", "wallet__group__name"]
    readonly_fields = ["amount"]
    raw_id_fields = ["wallet", "parent"]
    inlines = [BalanceIntervalInline]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):
    """Immutable: read-only for everyone."""

    list_display = ["created_at", "balance", "kind", "amount", "channel", "voucher", "actor"]
    list_select_related = [
        "balance__wallet__subscription__subscriber",
        "balance__wallet__group",
        "actor",
    ]
    list_filter = ["kind", "channel"]
    search_fields = ["=voucher", "=request_id"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    list_display = ["user", "voucher_mode", "created_at"]
    raw_id_fields = ["user"]
