"""The login audit in the admin: django-axes' records, readable, never edited (docs/panel.md).

Registered here instead of axes' own admin (AXES_ENABLE_ADMIN = False), which lets staff edit or
delete a failure and offers a clean-up action. Logins belong to no reseller, so these sections
are closed to reseller-scoped staff whatever permissions they hold. A lock is lifted with
`manage.py axes_reset_username USERNAME` (or `axes_reset_ip`), not from the admin.
"""

from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin

from common.admin import ReadOnlyAdminMixin

from .admin_scoping import ResellerScopedAdmin


class LoginAuditAdmin(ReadOnlyAdminMixin, ResellerScopedAdmin):
    reseller_lookup = None
    search_fields = ["username", "ip_address"]
    list_filter = ["path_info"]
    # Newest first by primary key (indexed): the logs only grow.
    ordering = ["-pk"]
    show_full_result_count = False


@admin.register(AccessFailureLog)
class FailedLoginAdmin(LoginAuditAdmin):
    """Every failed login, refused-by-lock ones included (`locked_out`)."""

    list_display = ["attempt_time", "username", "ip_address", "path_info", "locked_out"]
    list_filter = ["path_info", "locked_out"]
    fields = ["attempt_time", "username", "ip_address", "path_info", "locked_out", "user_agent"]


@admin.register(AccessLog)
class SuccessfulLoginAdmin(LoginAuditAdmin):
    list_display = ["attempt_time", "logout_time", "username", "ip_address", "path_info"]
    fields = ["attempt_time", "logout_time", "username", "ip_address", "path_info", "user_agent"]


@admin.register(AccessAttempt)
class LoginCounterAdmin(LoginAuditAdmin):
    """The live counts: failures per (username, address) within the cool-off."""

    list_display = ["attempt_time", "username", "ip_address", "path_info", "failures_since_start"]
    fields = ["attempt_time", "username", "ip_address", "path_info", "failures_since_start"]
