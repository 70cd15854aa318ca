"""Add client: one admin screen that creates a client ready to redeem (docs/panel.md).

The Subscribers section's admin is replaced by a subclass that adds the screen (its URL and the
button on the list): the subscribers app cannot know about wallets or cards, which the screen
needs. The admin index links to it too (templates/admin/index.html).
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters

from subscribers.admin import SubscriberAdmin
from subscribers.models import Subscriber
from subscribers.selectors import staff_reseller

from .exceptions import OnboardingError
from .forms import BalanceRowFormSet, ClientForm
from .services import client_onboard, may_onboard

admin.site.unregister(Subscriber)


@admin.register(Subscriber)
class ClientSubscriberAdmin(SubscriberAdmin):
    change_list_template = "admin/panel/subscriber_change_list.html"

    def get_urls(self):
        return [
            path(
                "add-client/",
                self.admin_site.admin_view(self.add_client_view),
                name="subscribers_subscriber_add_client",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_add_client": may_onboard(request.user)}
        return super().changelist_view(request, extra_context)

    @method_decorator(sensitive_post_parameters("password1", "password2"))
    def add_client_view(self, request):
        # admin_view only checks "active staff".
        if not may_onboard(request.user):
            raise PermissionDenied
        data = request.POST if request.method == "POST" else None
        form = ClientForm(data, scoped_reseller=staff_reseller(request.user))
        balances = BalanceRowFormSet(
            data, prefix="balances", initial=[{"resource_id": 1, "is_main": True}]
        )
        if data is not None and all([form.is_valid(), balances.is_valid()]):
            fields = form.cleaned_data
            try:
                client = client_onboard(
                    username=fields["username"],
                    password=fields["password1"],
                    name=fields["name"],
                    reseller=fields["reseller"],
                    external_id=fields["external_id"],
                    access_numbers=fields["access_numbers"],
                    balances=balances.plans(),
                    can_redeem=fields["can_redeem"],
                    actor=request.user,
                )
            except OnboardingError as error:
                rows = balances.filled_forms()
                for problem in error.problems:
                    target = form if problem.row is None else rows[problem.row]
                    target.add_error(problem.field or None, problem.message)
            else:
                self.log_addition(request, client.subscriber, "Added with Add client.")
                self.message_user(request, _added_text(client), messages.SUCCESS)
                if self.has_view_or_change_permission(request, client.subscriber):
                    return HttpResponseRedirect(
                        reverse("admin:subscribers_subscriber_change", args=[client.subscriber.pk])
                    )
                return HttpResponseRedirect(request.path)  # a fresh form for the next client
        return TemplateResponse(
            request,
            "admin/panel/add_client.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "Add client",
                "form": form,
                "balances": balances,
                "media": self.media + form.media + balances.media,
            },
        )


def _added_text(client) -> str:
    main = next(balance for balance in client.balances if balance.is_main)
    numbers = ", ".join(n.number for n in client.subscription.access_numbers.all())
    redeem = "may redeem vouchers" if client.can_redeem else "may not redeem vouchers"
    return (
        f"Client “{client.subscriber}” added: login {client.user.username}, subscription "
        f"{client.subscription.external_id} ({numbers}), {len(client.balances)} balance(s), "
        f"main balance #{main.resource_id} ({main.template.currency}). The client {redeem}."
    )
