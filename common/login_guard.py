"""Login protection for the admin and the client panel: django-axes, specialised (docs/panel.md).

What axes does as configured (config/settings/base.py): its backend asks the handler before the
password is checked, its signals report failures and successes to the handler, its models store
the counts and the audit (AccessAttempt, AccessFailureLog, AccessLog) in the database, and its
middleware turns a locked attempt into `lockout_response`.

What this module adds to axes' database handler:
- **One key per (username, client address)**, with one lockable counter row per key. A guesser
  is stopped on that pair; the same user from another address, and everyone else behind the same
  address, are not. While an address or a username has more failed logins than its budget in the
  cool-off (a spray, a botnet), each pair gets one try: who has not failed still logs in.
- **Counted before the password is checked.** Axes checks the count, then the password, then
  records the failure: parallel attempts all pass the check before any is recorded. Here the
  check and the count happen in one transaction on the pair's locked row; a success gives its
  count back. A crash between the two leaves the attempt counted as a failure.
- **An address that cannot be read counts under one fixed key** (`UNKNOWN_ADDRESS`) instead of
  escaping the count; IPv6 counts per network (REDEEM_LOCKOUT_IPV6_PREFIX), as redemption does.
- **A username no account has is recorded as a keyed digest** (`login_username`): people type
  their password into the username field, and the audit must not keep it in clear. It is still
  counted, so a lock does not tell which usernames exist.
- Attempts refused by a lock are audited (AccessFailureLog, `locked_out`) but not counted, so a
  lock ends when its message says.
"""

import datetime as dt
import hashlib
import hmac
import ipaddress
import logging

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from axes.models import AccessAttempt, AccessFailureLog
from axes.signals import user_locked_out
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME, get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.db import transaction
from django.db.models import F, Subquery
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext

from .formats import format_datetime
from .http import client_ip

log = logging.getLogger(__name__)

# A client address that cannot be parsed (e.g. an empty REMOTE_ADDR behind a misconfigured proxy):
# no real client connects from it, so all such attempts share one counted key.
UNKNOWN_ADDRESS = "0.0.0.0"  # noqa: S104 (a counting key, not a listening address)
# The counter rows are one per (username, address): axes' user-agent column is left empty, so an
# attacker changing User-Agent gets no fresh count. The failure log keeps the real user agent.
_PAIR_USER_AGENT = ""
# How a username no account has is recorded: this prefix and a keyed digest of what was typed.
UNKNOWN_USERNAME_PREFIX = "(no such user) "
_FAILURE_LOG_KEEP_PER_USERNAME = 1000


def client_address(request) -> str:
    """AXES_CLIENT_IP_CALLABLE: `common.http.client_ip`, IPv6 per network, never None."""
    address = client_ip(request)
    if address is None:
        return UNKNOWN_ADDRESS
    parsed = ipaddress.ip_address(address)
    if parsed.version == 6:
        prefix = int(getattr(settings, "REDEEM_LOCKOUT_IPV6_PREFIX", 64))
        return str(ipaddress.ip_network(f"{parsed}/{prefix}", strict=False).network_address)
    return address


def login_username(request, credentials=None) -> str:
    """AXES_USERNAME_CALLABLE: the username tried, or a keyed digest of it when no account has
    it (it may be a password typed in the wrong field). Looked up once per request."""
    if credentials:
        typed = credentials.get(get_user_model().USERNAME_FIELD)
    else:
        typed = getattr(request, "data", request.POST).get(get_user_model().USERNAME_FIELD)
    typed = str(typed or "")
    known = getattr(request, "login_usernames", None)
    if known is None:
        known = request.login_usernames = {}
    if typed not in known:
        field_name = get_user_model().USERNAME_FIELD
        if typed and get_user_model()._default_manager.filter(**{field_name: typed}).exists():
            known[typed] = typed
        else:
            digest = hmac.new(settings.SECRET_KEY.encode(), typed.encode(), hashlib.sha256)
            known[typed] = f"{UNKNOWN_USERNAME_PREFIX}{digest.hexdigest()[:16]}"
    return known[typed]


def _cool_off(request) -> dt.timedelta:
    return get_cool_off(request) or dt.timedelta(minutes=15)


def _live_attempts(request):
    threshold = request.axes_attempt_time - _cool_off(request)
    return AccessAttempt.objects.filter(attempt_time__gte=threshold, failures_since_start__gt=0)


def _over(attempts, budget: int) -> bool:
    """More than `budget` failures among these rows, reading at most budget + 1 of them."""
    counts = attempts.order_by().values_list("failures_since_start", flat=True)[: budget + 1]
    return sum(counts) > budget


def failure_limit(request, credentials=None) -> int:
    """AXES_FAILURE_LIMIT: failures a (username, address) pair may have before it is locked.

    LOGIN_LOCKOUT_FAILURES, or 1 while the address or the username is over its budget: a pair
    that has not failed still gets its try, one that has is stopped at once.
    """
    normal = int(getattr(settings, "LOGIN_LOCKOUT_FAILURES", 5))
    username = get_client_username(request, credentials) or ""
    live = _live_attempts(request)
    address_budget = int(getattr(settings, "LOGIN_LOCKOUT_ADDRESS_FAILURES", 100))
    username_budget = int(getattr(settings, "LOGIN_LOCKOUT_USERNAME_FAILURES", 20))
    if _over(live.filter(ip_address=request.axes_ip_address), address_budget):
        return 1
    if _over(live.filter(username=username), username_budget):
        return 1
    return normal


class LoginGuardHandler(AxesDatabaseHandler):
    """AXES_HANDLER: axes' database handler, counting before the password is checked."""

    def is_allowed(self, request, credentials=None) -> bool:
        """Called by axes' backend before the password check: allowed, and if so counted."""
        if self.is_blacklisted(request, credentials):
            return False
        if self.is_whitelisted(request, credentials):
            return True
        return self._count(request, credentials, check=True)

    def _count(self, request, credentials, *, check: bool) -> bool:
        username = get_client_username(request, credentials) or ""
        now = request.axes_attempt_time
        cool_off = _cool_off(request)
        with transaction.atomic():
            attempt, _ = AccessAttempt.objects.select_for_update().get_or_create(
                username=username,
                ip_address=request.axes_ip_address,
                user_agent=_PAIR_USER_AGENT,
                defaults={
                    "get_data": "",
                    "post_data": "",
                    "http_accept": request.axes_http_accept,
                    "path_info": request.axes_path_info,
                    "failures_since_start": 0,
                },
            )
            failures = attempt.failures_since_start
            if attempt.attempt_time < now - cool_off:
                failures = 0
            if check and failures >= get_failure_limit(request, credentials):
                request.login_locked_until = attempt.attempt_time + cool_off
                return False
            attempt.failures_since_start = failures + 1
            attempt.attempt_time = now
            attempt.path_info = request.axes_path_info
            attempt.http_accept = request.axes_http_accept
            attempt.save(
                update_fields=["failures_since_start", "attempt_time", "path_info", "http_accept"]
            )
        request.login_counted_attempt = attempt.pk
        return True

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        if request is None:
            log.error("Login failure reported without a request: not counted.")
            return
        username = get_client_username(request, credentials)
        if not request.axes_locked_out:
            if getattr(request, "login_counted_attempt", None) is None:
                # A failure axes' backend did not see first (a whitelisted address, a custom
                # caller of the signal): count it now.
                self._count(request, credentials, check=False)
            attempt = AccessAttempt.objects.filter(pk=request.login_counted_attempt).first()
            limit = get_failure_limit(request, credentials)
            if attempt is not None and attempt.failures_since_start >= limit:
                request.axes_locked_out = True
                request.login_locked_until = attempt.attempt_time + _cool_off(request)
        if request.axes_locked_out:
            request.axes_credentials = credentials
            user_locked_out.send(
                "axes", request=request, username=username, ip_address=request.axes_ip_address
            )
        AccessFailureLog.objects.create(
            username=username,
            ip_address=request.axes_ip_address,
            user_agent=request.axes_user_agent,
            http_accept=request.axes_http_accept,
            path_info=request.axes_path_info,
            locked_out=request.axes_locked_out,
        )
        if username is not None:
            self.remove_out_of_limit_failure_logs(username=username)
        self.clean_expired_user_attempts(request, credentials)

    def user_logged_in(self, sender, request, user, **kwargs):
        super().user_logged_in(sender, request, user, **kwargs)
        counted = getattr(request, "login_counted_attempt", None)
        if counted is not None:
            # The attempt was counted as a failure before the password was checked: give it back.
            AccessAttempt.objects.filter(pk=counted, failures_since_start__gt=0).update(
                failures_since_start=F("failures_since_start") - 1
            )
            request.login_counted_attempt = None

    def remove_out_of_limit_failure_logs(self, *, username: str, limit: int | None = None) -> int:
        """Keep the latest failures of a username, in one statement (axes deletes row by row,
        in no particular order, so under a flood it could drop the newest)."""
        limit = limit or _FAILURE_LOG_KEEP_PER_USERNAME
        rows = AccessFailureLog.objects.filter(username=username)
        oldest = rows.order_by("-pk").values("pk")[limit:]
        if not rows.order_by("-pk")[limit : limit + 1].exists():
            return 0
        count, _ = AccessFailureLog.objects.filter(pk__in=Subquery(oldest)).delete()
        return count


# --- what a locked login sees ------------------------------------------------------------------


def locked_message(until: dt.datetime) -> str:
    """In the active language: the panel's, English in the admin (docs/panel.md)."""
    local = timezone.localtime(until)
    return gettext(
        "Too many failed logins for this username from your network. Logging in with it from "
        "here is paused until %(until)s (%(zone)s). Please try again after that time."
    ) % {"until": format_datetime(local), "zone": local.tzname()}


def _is_admin(request) -> bool:
    try:
        return request.path.startswith(reverse("admin:index"))
    except NoReverseMatch:
        return False


def lockout_response(request, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: the login page it came from, saying until when, HTTP 429."""
    now = timezone.now()
    until = getattr(request, "login_locked_until", None) or now + _cool_off(request)
    typed = str(request.POST.get(get_user_model().USERNAME_FIELD, ""))
    next_url = request.POST.get(REDIRECT_FIELD_NAME, request.GET.get(REDIRECT_FIELD_NAME, ""))
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = ""
    context = {"locked_message": locked_message(until), REDIRECT_FIELD_NAME: next_url}
    if _is_admin(request):
        request.current_app = admin.site.name
        template = "admin/login.html"
        context |= {
            **admin.site.each_context(request),
            "title": "Log in",
            "subtitle": None,
            "app_path": request.get_full_path(),
            "username": request.user.get_username(),
            "form": AdminAuthenticationForm(request, initial={"username": typed}),
        }
        if not next_url:
            context[REDIRECT_FIELD_NAME] = reverse("admin:index")
    else:
        template = "panel/login.html"
        context["form"] = AuthenticationForm(request, initial={"username": typed})
    response = render(request, template, context, status=429)
    response["Retry-After"] = str(max(1, int((until - now).total_seconds()) + 1))
    add_never_cache_headers(response)
    return response
