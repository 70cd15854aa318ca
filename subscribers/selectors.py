"""Reads about who may see what: the reseller a staff user is limited to (StaffReseller).

One place for every app: the cards screens, the reports, the other admin sections and the REST
API all ask here. Looked up once per request (kept on the user object)."""

from .models import Reseller, StaffReseller


def staff_reseller(user) -> Reseller | None:
    """The reseller a staff user is scoped to, or None for operators who see every reseller."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    if not hasattr(user, "_staff_reseller"):
        link = StaffReseller.objects.select_related("reseller").filter(user=user).first()
        user._staff_reseller = link.reseller if link else None
    return user._staff_reseller


def staff_reseller_id(user) -> int | None:
    scoped = staff_reseller(user)
    return scoped.pk if scoped is not None else None
