"""The client panel: a subscriber's balances and history, and Redeem Voucher (docs/panel.md).

Thin views: a form that only validates, one service call, a message, a redirect. The PIN is
never put in a URL, a message, the session or a log: after a POST the browser is always
redirected, so a refresh cannot send the code again and the form comes back empty.
"""

from django.contrib import messages
from django.contrib.auth.views import (
    LoginView,
    LogoutView,
    PasswordChangeDoneView,
    PasswordChangeView,
)
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.formats import date_format
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from cards.exceptions import CardError, NoMainBalance, RedemptionAddressUnknown, RedemptionBusy
from cards.lockout import locked_message, redemption_locked_until
from cards.services.redemption import card_redeem_main
from common.http import client_ip
from wallets.exceptions import WalletError
from wallets.models import Channel
from wallets.selectors import (
    subscriber_balances,
    subscriber_main_balance,
    subscriber_recent_entries,
)

from .decorators import REDEEM_PERMISSION, panel_headers, subscriber_required
from .forms import RedeemForm
from .templatetags.panel import format_amount

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
            notice = RedemptionAddressUnknown().message
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
    except NoMainBalance as error:
        messages.error(request, error.message)
        return
    except CardError as error:
        messages.error(request, error.message, extra_tags=error.code)
        return
    except RedemptionBusy as error:
        # Held by a background job for more than a moment: nothing done, the code was not used.
        messages.error(request, error.message, extra_tags="busy")
        return
    except WalletError as error:
        # A balance rule (e.g. the balance has expired): not the code's fault, not counted.
        messages.error(request, f"The voucher could not be credited: {error.message}")
        return
    card, new_balance = redemption.card, redemption.balance
    precision = new_balance.template.precision
    amount = f"{format_amount(card.amount, precision)} {card.currency}"
    now = f"{format_amount(new_balance.amount, precision)} {new_balance.template.currency}"
    if redemption.replayed:
        when = date_format(timezone.localtime(card.activated_at), "j M Y, H:i")
        text = f"Voucher {card.serial} redeemed earlier by you ({when}): {amount} was added then."
    else:
        text = f"Voucher {card.serial} redeemed: {amount} added."
    messages.success(request, f"{text} Your balance is now {now}.", extra_tags="redeemed")


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


@method_decorator(panel_headers, name="dispatch")
class PanelLoginView(LoginView):
    """Django's login: `next` is followed only when it points at this site."""

    template_name = "panel/login.html"
    redirect_authenticated_user = True
    next_page = reverse_lazy("panel:dashboard")


@method_decorator(panel_headers, name="dispatch")
class PanelLogoutView(LogoutView):
    next_page = reverse_lazy("panel:login")


@method_decorator(panel_headers, name="dispatch")
class PanelPasswordChangeView(PasswordChangeView):
    template_name = "panel/password_change.html"
    success_url = reverse_lazy("panel:password_change_done")


@method_decorator(panel_headers, name="dispatch")
class PanelPasswordChangeDoneView(PasswordChangeDoneView):
    template_name = "panel/password_change_done.html"
