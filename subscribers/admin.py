from django.contrib import admin

from .models import AccessNumber, Group, Reseller, StaffReseller, Subscriber, Subscription


@admin.register(Reseller)
class ResellerAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]


@admin.register(StaffReseller)
class StaffResellerAdmin(admin.ModelAdmin):
    list_display = ["user", "reseller"]
    list_select_related = ["user", "reseller"]
    autocomplete_fields = ["reseller"]


@admin.register(Group)
class GroupAdmin(admin.ModelAdmin):
    list_display = ["name", "external_id", "created_at"]
    search_fields = ["name", "external_id"]


class AccessNumberInline(admin.TabularInline):
    model = AccessNumber
    extra = 1


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "reseller", "created_at"]
    list_select_related = ["user", "reseller"]
    search_fields = ["name", "user__username"]
    autocomplete_fields = ["reseller"]
    raw_id_fields = ["user"]


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ["external_id", "subscriber", "group", "created_at"]
    list_select_related = ["subscriber", "group"]
    search_fields = ["external_id", "access_numbers__number", "subscriber__name"]
    autocomplete_fields = ["subscriber", "group"]
    inlines = [AccessNumberInline]
