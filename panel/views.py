"""The client panel: a subscriber's balances and history, and Redeem Voucher (PRODUCT.md 3).

Thin views: a form that only validates, one service call, a message, a redirect. The PIN is
never put in a URL, a message, the session or a log: after a POST the browser is always
redirected, so a refresh cannot send the code again and the form comes back empty.
"""

from functools import wraps

from django import forms
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.formats import date_format
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from cards.exceptions import CardError, NoMainBalance
from cards.lockout import locked_message, redemption_locked_until
from cards.services import card_redeem
from common.http import client_ip
from wallets.exceptions import WalletError
from wallets.models import Channel
from wallets.selectors import subscriber_main_balance

from .selectors import subscriber_balances, subscriber_recent_entries
from .templatetags.panel import format_amount

REDEEM_PERMISSION = "cards.redeem_card"
# The panel loads nothing but its own stylesheet and posts only to itself: a content security
# policy that says so stops injected scripts, foreign forms and framing.
PANEL_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def panel_headers(view):
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response.headers.setdefault("Content-Security-Policy", PANEL_CSP)
        return response

    return wrapped


class CodeInput(forms.TextInput):
    """A text box that never writes the typed code back into the page."""

    def format_value(self, value):
        return None


class RedeemForm(forms.Form):
    code = forms.CharField(
        label="Voucher Code",
        max_length=64,
        error_messages={
            "required": "Enter the voucher code printed on your card.",
            "max_length": "This is not a valid voucher code: please check the code and try again.",
        },
        widget=CodeInput(
            attrs={
                "autocomplete": "off",
                "autocapitalize": "off",
                "autocorrect": "off",
                "spellcheck": "false",
                "inputmode": "numeric",
                "placeholder": "1234 5678 9012",
                "autofocus": True,
            }
        ),
    )


def _forbidden(request, reason: str):
    return render(request, "panel/forbidden.html", {"reason": reason}, status=403)


def subscriber_required(permission: str | None = None):
    """Logged in, linked to a subscriber and, when given, holding `permission`; else 403."""

    def decorator(view):
        @wraps(view)
        @panel_headers
        @login_required
        @never_cache
        def wrapped(request, *args, **kwargs):
            subscriber = getattr(request.user, "subscriber", None)
            if subscriber is None:
                return _forbidden(request, "Your login is not linked to a subscriber account.")
            if permission and not request.user.has_perm(permission):
                return _forbidden(request, "Your account is not allowed to redeem vouchers.")
            request.subscriber = subscriber
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def _panel_context(request, form=None, *, back: str = "redeem") -> dict:
    subscriber = request.subscriber
    can_redeem = request.user.has_perm(REDEEM_PERMISSION)
    locked_until = None
    if can_redeem:
        locked_until = redemption_locked_until(
            subscriber=subscriber,
            actor=request.user,
            channel=Channel.PANEL,
            ip_address=client_ip(request),
        )
    return {
        "subscriber": subscriber,
        "can_redeem": can_redeem,
        "locked_message": locked_message(locked_until) if locked_until else "",
        "main_balance": subscriber_main_balance(subscriber),
        "form": form or RedeemForm(),
        "back": back,
    }


@require_http_methods(["GET"])
@subscriber_required()
def dashboard(request):
    context = _panel_context(request, back="dashboard")
    context["balances"] = subscriber_balances(request.subscriber)
    context["entries"] = subscriber_recent_entries(request.subscriber)
    return render(request, "panel/dashboard.html", context)


def _redeem(request, code: str) -> None:
    subscriber = request.subscriber
    balance = subscriber_main_balance(subscriber)
    if balance is None:
        messages.error(request, NoMainBalance().message)
        return
    try:
        redemption = card_redeem(
            pin=code,
            balance=balance,
            subscriber=subscriber,
            actor=request.user,
            channel=Channel.PANEL,
            ip_address=client_ip(request),
            # The subscriber's own retry of a code that went through (an answer lost with the
            # connection) is told so, with the amount, instead of "already used".
            allow_replay=True,
        )
    except CardError as error:
        messages.error(request, error.message, extra_tags=error.code)
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
class PanelLoginView(auth_views.LoginView):
    """Django's login: `next` is followed only when it points at this site."""

    template_name = "panel/login.html"
    redirect_authenticated_user = True
    next_page = reverse_lazy("panel:dashboard")


@method_decorator(panel_headers, name="dispatch")
class PanelLogoutView(auth_views.LogoutView):
    next_page = reverse_lazy("panel:login")


@method_decorator(panel_headers, name="dispatch")
class PanelPasswordChangeView(auth_views.PasswordChangeView):
    template_name = "panel/password_change.html"
    success_url = reverse_lazy("panel:password_change_done")


@method_decorator(panel_headers, name="dispatch")
class PanelPasswordChangeDoneView(auth_views.PasswordChangeDoneView):
    template_name = "panel/password_change_done.html"
