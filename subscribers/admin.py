from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin as AuthGroupAdmin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import Group as AuthGroup

from . import admin_logins  # noqa: F401  (registers the login audit sections)
from .admin_scoping import ResellerScopedAdmin
from .models import AccessNumber, Group, Reseller, StaffReseller, Subscriber, Subscription
from .selectors import staff_reseller_id


@admin.register(Reseller)
class ResellerAdmin(ResellerScopedAdmin):
    reseller_lookup = "pk"
    list_display = ["name", "created_at"]
    search_fields = ["name"]


@admin.register(StaffReseller)
class StaffResellerAdmin(ResellerScopedAdmin):
    list_display = ["user", "reseller"]
    list_select_related = ["user", "reseller"]
    autocomplete_fields = ["user", "reseller"]


@admin.register(Group)
class GroupAdmin(ResellerScopedAdmin):
    list_display = ["name", "external_id", "created_at"]
    search_fields = ["name", "external_id"]


class AccessNumberInline(admin.TabularInline):
    model = AccessNumber
    extra = 1


@admin.register(Subscriber)
class SubscriberAdmin(ResellerScopedAdmin):
    reseller_lookup = "reseller_id"
    list_display = ["name", "user", "reseller", "created_at"]
    list_select_related = ["user", "reseller"]
    search_fields = ["name", "user__username"]
    autocomplete_fields = ["user", "reseller"]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "language":
            # The panel's languages as they are now (the model keeps no choices, so a new
            # language needs no migration): a language the panel does not speak is refused.
            return forms.ChoiceField(
                choices=[("", "The browser's language")] + list(settings.LANGUAGES),
                required=False,
                label="Panel language",
                help_text=db_field.help_text,
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        reseller_id = staff_reseller_id(request.user)
        if db_field.name == "user" and reseller_id is not None:
            # The users section is closed to them (its autocomplete too): they keep, or swap,
            # the logins of their own reseller's subscribers, never link anyone else's login.
            # A new client's login is made by Add client.
            kwargs["queryset"] = get_user_model().objects.filter(
                subscriber__reseller_id=reseller_id
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Subscription)
class SubscriptionAdmin(ResellerScopedAdmin):
    reseller_lookup = "subscriber__reseller_id"
    list_display = ["external_id", "subscriber", "group", "created_at"]
    list_select_related = ["subscriber", "group"]
    search_fields = ["external_id", "access_numbers__number", "subscriber__name"]
    autocomplete_fields = ["subscriber", "group"]
    inlines = [AccessNumberInline]


# Users and permission groups: a reseller-scoped staff user holding their permissions could make
# themselves a superuser, so these sections are closed to them too.
admin.site.unregister(get_user_model())
admin.site.unregister(AuthGroup)


@admin.register(get_user_model())
class ScopedUserAdmin(ResellerScopedAdmin, UserAdmin):
    pass


@admin.register(AuthGroup)
class ScopedAuthGroupAdmin(ResellerScopedAdmin, AuthGroupAdmin):
    pass
