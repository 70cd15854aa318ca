"""The global failure budget alert shown on every admin page (templates/admin/base_site.html)."""

from django import template
from django.urls import NoReverseMatch, reverse

from cards.lockout import failure_budget_status

register = template.Library()


@register.inclusion_tag("admin/redemption_alert.html", takes_context=True)
def redemption_alert(context):
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not (user.is_active and user.is_staff):
        return {"budget": None}
    budget = failure_budget_status()
    if not budget.exceeded:
        return {"budget": None}
    events_url = None
    if user.has_perm("cards.view_cardevent"):
        try:
            events_url = reverse("admin:cards_cardevent_changelist") + "?kind__exact=redeem_failed"
        except NoReverseMatch:
            events_url = None
    return {"budget": budget, "events_url": events_url}
