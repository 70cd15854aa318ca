from django.contrib import admin

from cards.models import CardBatch, CardEvent, TopUpCard

from . import jobs  # noqa: F401  (registers GenerationJobAdmin)


@admin.register(TopUpCard)
class TopUpCardAdmin(admin.ModelAdmin):
    list_display = [
        "serial",
        "amount",
        "currency",
        "masked_pin",
        "reseller",
        "activated_at",
        "created_at",
    ]
    list_select_related = ["reseller", "activated_by"]
    exclude = ["pin_digest", "pin_encrypted"]
    readonly_fields = [
        "pin_length",
        "pin_last4",
        "activated_at",
        "activated_by",
        "ledger_entry",
        "batch",
    ]


@admin.register(CardBatch)
class CardBatchAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "amount",
        "currency",
        "reseller",
        "expires_at",
        "created_by",
        "created_at",
    ]
    list_select_related = ["reseller", "created_by"]

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(CardEvent)
class CardEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "kind", "serial", "actor", "subscriber", "channel"]
    list_select_related = ["actor", "subscriber"]
    list_filter = ["kind"]
    search_fields = ["=serial"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
