"""Admin bases shared by the apps' admin modules."""


class ReadOnlyAdminMixin:
    """History: readable, never added, edited or deleted by hand.

    For model admins and inlines alike (an inline's permission checks take the parent object).
    """

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
