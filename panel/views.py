"""The client panel: a subscriber's balances and history, and Redeem Voucher (docs/panel.md).

Thin views: a form that only validates, one service call, a message, a redirect. The PIN is
never put in a URL, a message, the session or a log: after a POST the browser is always
redirected, so a refresh cannot send the code again and the form comes back empty.
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import (
    LoginView,
    LogoutView,
    PasswordChangeDoneView,
    PasswordChangeView,
)
from django.http import HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import get_language, gettext
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from cards.exceptions import CardError, NoMainBalance, RedemptionAddressUnknown, RedemptionBusy
from cards.lockout import locked_message, redemption_locked_until
from cards.services.redemption import card_redeem_main
from common.formats import format_datetime, format_money
from common.http import client_ip
from subscribers.services import subscriber_language_set
from wallets.exceptions import WalletError
from wallets.models import Channel
from wallets.selectors import (
    subscriber_balances,
    subscriber_main_balance,
    subscriber_recent_entries,
)

from .decorators import REDEEM_PERMISSION, panel_headers, subscriber_required
from .forms import RedeemForm
from .middleware import supported, use_saved_language

RECENT_ENTRIES = 10  # ledger entries on the dashboard


def _panel_context(request, form=None, *, back: str = "redeem") -> dict:
    subscriber = request.subscriber
    can_redeem = request.can_redeem
    notice = ""
    if can_redeem:
        ip_address = client_ip(request)
        locked_until = redemption_locked_until(
            subscriber=subscriber,
            actor=request.user,
            channel=Channel.PANEL,
            ip_address=ip_address,
        )
        if locked_until is not None:
            notice = locked_message(locked_until)
        elif ip_address is None:
            notice = gettext(RedemptionAddressUnknown().message)
    return {
        "subscriber": subscriber,
        "can_redeem": can_redeem,
        "locked_message": notice,
        "main_balance": subscriber_main_balance(subscriber),
        "form": form or RedeemForm(),
        "back": back,
    }


@require_http_methods(["GET"])
@subscriber_required()
def dashboard(request):
    context = _panel_context(request, back="dashboard")
    context["balances"] = subscriber_balances(request.subscriber)
    context["entries"] = subscriber_recent_entries(request.subscriber, limit=RECENT_ENTRIES)
    return render(request, "panel/dashboard.html", context)


def _redeem(request, code: str) -> None:
    try:
        redemption = card_redeem_main(
            pin=code,
            subscriber=request.subscriber,
            actor=request.user,
            ip_address=client_ip(request),
        )
    # The services' messages are English msgids (cards/exceptions.py marks them): the panel
    # shows them in the subscriber's language.
    except NoMainBalance as error:
        messages.error(request, gettext(error.message))
        return
    except CardError as error:
        messages.error(request, gettext(error.message), extra_tags=error.code)
        return
    except RedemptionBusy as error:
        # Held by a background job for more than a moment: nothing done, the code was not used.
        messages.error(request, gettext(error.message), extra_tags="busy")
        return
    except WalletError as error:
        # A balance rule (e.g. the balance has expired): not the code's fault, not counted.
        text = gettext("The voucher could not be credited: %(reason)s")
        messages.error(request, text % {"reason": gettext(error.message)})
        return
    card, new_balance = redemption.card, redemption.balance
    precision = new_balance.template.precision
    values = {
        "serial": card.serial,
        "amount": format_money(card.amount, precision, card.currency, language=get_language()),
        "balance": format_money(
            new_balance.amount, precision, new_balance.template.currency, language=get_language()
        ),
    }
    if redemption.replayed:
        values["when"] = format_datetime(card.activated_at, english="j M Y, H:i")
        text = gettext(
            "Voucher %(serial)s redeemed earlier by you (%(when)s): %(amount)s was added then. "
            "Your balance is now %(balance)s."
        )
    else:
        text = gettext(
            "Voucher %(serial)s redeemed: %(amount)s added. Your balance is now %(balance)s."
        )
    messages.success(request, text % values, extra_tags="redeemed")


@sensitive_post_parameters("code")
@require_http_methods(["GET", "POST"])
@subscriber_required(REDEEM_PERMISSION)
def redeem(request):
    if request.method == "POST":
        form = RedeemForm(request.POST)
        if form.is_valid():
            _redeem(request, form.cleaned_data["code"])
            # Back to the page the form was on: a name from a fixed list, never a URL.
            back = request.POST.get("back")
            return redirect("panel:dashboard" if back == "dashboard" else "panel:redeem")
        # Only an empty or overlong code gets here; CodeInput never echoes what was typed.
        return render(request, "panel/redeem.html", _panel_context(request, form), status=400)
    return render(request, "panel/redeem.html", _panel_context(request))


@require_POST
@panel_headers
def language(request):
    """The language switch at the foot of every panel page: saved on the subscriber when one is
    logged in, kept in the language cookie for the login page; back to the page it was on."""
    choice = supported(request.POST.get("language"))
    if choice is None:
        return HttpResponseBadRequest()
    panel = reverse("panel:dashboard")
    back = request.POST.get("next", "")
    safe = url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    response = redirect(back if safe and back.startswith(panel) else panel)
    subscriber = getattr(request.user, "subscriber", None)
    if subscriber is not None:
        subscriber_language_set(subscriber=subscriber, language=choice, actor=request.user)
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        choice,
        max_age=365 * 24 * 3600,
        path=panel,
        secure=request.is_secure(),
        httponly=True,
        samesite="Lax",
    )
    return response


@method_decorator(panel_headers, name="dispatch")
class PanelLoginView(LoginView):
    """Django's login: `next` is followed only when it points at this site."""

    template_name = "panel/login.html"
    redirect_authenticated_user = True
    next_page = reverse_lazy("panel:dashboard")


@method_decorator(panel_headers, name="dispatch")
class PanelLogoutView(LogoutView):
    next_page = reverse_lazy("panel:login")


class SavedLanguageMixin:
    """Pages behind the login that are not subscriber_required: the saved language too."""

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            use_saved_language(request, getattr(request.user, "subscriber", None))
        return super().dispatch(request, *args, **kwargs)


@method_decorator(panel_headers, name="dispatch")
class PanelPasswordChangeView(SavedLanguageMixin, PasswordChangeView):
    template_name = "panel/password_change.html"
    success_url = reverse_lazy("panel:password_change_done")


@method_decorator(panel_headers, name="dispatch")
class PanelPasswordChangeDoneView(SavedLanguageMixin, PasswordChangeDoneView):
    template_name = "panel/password_change_done.html"
