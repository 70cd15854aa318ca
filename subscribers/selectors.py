"""Reads about who may see what: the reseller a staff user is limited to."""

from .models import StaffReseller


def staff_reseller_id(user) -> int | None:
    """The reseller a staff user is limited to, or None for operators who see every reseller."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    if not hasattr(user, "_staff_reseller_id"):
        user._staff_reseller_id = (
            StaffReseller.objects.filter(user=user).values_list("reseller_id", flat=True).first()
        )
    return user._staff_reseller_id
