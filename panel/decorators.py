"""What every panel page shares: its content security policy, and who may open it."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache

from .middleware import use_saved_language
from .selectors import panel_subscriber

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


def _forbidden(request, reason: str):
    return render(request, "panel/forbidden.html", {"reason": reason}, status=403)


def subscriber_required(permission: str | None = None):
    """Logged in, linked to a subscriber and, when given, holding `permission` (the only one
    the panel asks for: REDEEM_PERMISSION); else 403. Sets request.subscriber and
    request.can_redeem."""
    if permission not in (None, REDEEM_PERMISSION):
        raise ValueError(f"The panel checks {REDEEM_PERMISSION} only, not {permission}.")

    def decorator(view):
        @wraps(view)
        @panel_headers
        @login_required
        @never_cache
        def wrapped(request, *args, **kwargs):
            subscriber = panel_subscriber(request.user, permission=REDEEM_PERMISSION)
            if subscriber is None:
                return _forbidden(
                    request, gettext("Your login is not linked to a subscriber account.")
                )
            use_saved_language(request, subscriber)
            if permission and not subscriber.can:
                return _forbidden(
                    request, gettext("Your account is not allowed to redeem vouchers.")
                )
            request.subscriber = subscriber
            request.can_redeem = subscriber.can
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
