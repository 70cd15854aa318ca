"""`{% add_client_link %}`: the admin index's link to Add client, for those who may use it."""

from django import template
from django.urls import reverse
from django.utils.html import format_html

from panel.services import may_onboard

register = template.Library()


@register.simple_tag(takes_context=True)
def add_client_link(context) -> str:
    if not may_onboard(context["request"].user):
        return ""
    return format_html(
        '<div class="module" id="add-client-module"><h2>Clients</h2><table><tbody><tr>'
        '<th scope="row"><a href="{}">Add client</a></th>'
        '<td><a href="{}" class="addlink">Add</a></td></tr></tbody></table>'
        '<p class="help">Login, subscriber, subscription, wallet and balances on one screen, '
        "ready to redeem a card.</p></div>",
        reverse("admin:subscribers_subscriber_add_client"),
        reverse("admin:subscribers_subscriber_add_client"),
    )
