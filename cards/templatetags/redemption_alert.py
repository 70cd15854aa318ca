"""The global failure alert shown on every admin page (templates/admin/base_site.html):
failed redemptions over their budget, failed logins over theirs."""

from django import template
from django.urls import NoReverseMatch, reverse

from cards.lockout import failure_budget_status
from common.logins import login_failure_status
from subscribers.selectors import staff_reseller_id

register = template.Library()


def _url(user, permission: str, name: str, query: str = "") -> str | None:
    if not user.has_perm(permission):
        return None
    try:
        return reverse(name) + query
    except NoReverseMatch:
        return None


@register.inclusion_tag("admin/redemption_alert.html", takes_context=True)
def redemption_alert(context):
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not (user.is_active and user.is_staff):
        return {"budget": None, "logins": None}
    budget = failure_budget_status()
    # Logins belong to no reseller: their figures (usernames, addresses of everyone) are for
    # operators only, like the login audit sections (subscribers/admin_logins.py).
    logins = login_failure_status() if staff_reseller_id(user) is None else None
    return {
        "budget": budget if budget.exceeded else None,
        "events_url": _url(
            user,
            "cards.view_cardevent",
            "admin:cards_cardevent_changelist",
            "?kind__exact=redeem_failed",
        ),
        "logins": logins if logins is not None and logins.exceeded else None,
        "logins_url": _url(
            user, "axes.view_accessfailurelog", "admin:axes_accessfailurelog_changelist"
        ),
    }
