"""Who may call the REST API and how often: its DRF authentication, permission and throttle
classes, each answered from the one credentials query MtxView.initial makes (rsgateway.views).
"""

from django.contrib.auth import get_user_model
from rest_framework.authentication import BasicAuthentication, TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework.throttling import UserRateThrottle

from subscribers.selectors import staff_reseller_id
from wallets.ratelimits import hit_params, rate_limit_hit

from .credentials import Principal, basic_password_ok, principal_lookup
from .leases import lease_size

# Wrong credentials per client IP before the API stops checking them for a while (brute force).
AUTH_FAILURE_LIMIT = 20
AUTH_FAILURE_WINDOW = 15 * 60


def _principal(request, *, token=None, username=None) -> Principal:
    """The Principal MtxView.initial loaded for these credentials, or a fresh lookup."""
    loaded = getattr(request, "mtx_principal", None)
    if loaded is not None and loaded[0] == (token, username):
        return loaded[1]
    return principal_lookup(token=token, username=username)


class ClientTokenAuthentication(TokenAuthentication):
    """`Authorization: Token …`: the user, their API client and permissions in one query."""

    def authenticate(self, request):
        self._request = request
        return super().authenticate(request)

    def authenticate_credentials(self, key):
        user = _principal(self._request, token=key).user
        if user is None:
            raise AuthenticationFailed("Invalid token.")
        if not user.is_active:
            raise AuthenticationFailed("User inactive or deleted.")
        return user, self.get_model()(key=key, user=user)


class ClientBasicAuthentication(BasicAuthentication):
    """HTTP Basic like Django's ModelBackend (inactive users refused, a missing user costs a
    password hash too), with the user's API client and permissions loaded in the same query."""

    def authenticate_credentials(self, userid, password, request=None):
        user = _principal(request, username=userid).user
        if user is None:
            get_user_model()().set_password(password)  # as long as a real check
            raise AuthenticationFailed("Invalid username/password.")
        if not basic_password_ok(user, password) or not user.is_active:
            raise AuthenticationFailed("Invalid username/password.")
        return user, None


class ClientRateThrottle(UserRateThrottle):
    """Requests per API client (per user), rate `REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`.

    Counted in wallets.RateCounter (one UPSERT a request, shared by every process) instead of
    DRF's list of timestamps in the cache, which grows with the rate and is rewritten each time.
    """

    scope = "rsgateway"
    _wait: float | None = None

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        counted = getattr(request, "mtx_counted", None)
        decision = None
        if counted is not None and counted[0] == key:
            decision = counted[1]  # MtxView.initial counted this request (or a lease of them)
            if not decision.allowed and counted[2] > 1:
                decision = None  # a lease did not fit under the rate; one request may
        if decision is None:
            decision = rate_limit_hit(key=key, limit=self.num_requests, period=self.duration)
        self._wait = decision.wait
        return decision.allowed

    def count_in_lookup(self, view, now: float) -> dict | None:
        """principal_lookup's `count`: this throttle's key and rate, the view's permissions,
        and a lease of requests to count at once (rsgateway.leases)."""
        if self.rate is None:
            return None
        return {
            "throttle_prefix": self.cache_format % {"scope": self.scope, "ident": ""},
            "required": sorted(perm.split(".", 1)[1] for perm in view.required_permissions),
            **hit_params(
                limit=self.num_requests,
                period=self.duration,
                now=now,
                n=lease_size(self.num_requests) if view.leases_requests else 1,
            ),
        }

    def wait(self) -> float | None:
        return self._wait


class HasRequiredPermission(BasePermission):
    message = "You do not have permission to do this."

    def has_permission(self, request, view) -> bool:
        """Any of the view's permissions. A staff user limited to one reseller sees and changes
        only that reseller's balances in the admin; the API reaches every subscription, so it
        serves no such user."""
        user = request.user
        codenames = {perm.split(".", 1)[1] for perm in view.required_permissions}
        loaded = getattr(request, "mtx_principal", None)
        if loaded is not None and loaded[1].user is user and codenames <= set(loaded[1].checked):
            # MtxView.initial's one query already holds all of it.
            principal = loaded[1]
            if principal.reseller_scoped:
                return False
            return user.is_superuser or bool(principal.permissions & codenames)
        if staff_reseller_id(user) is not None:
            return False
        return any(user.has_perm(perm) for perm in view.required_permissions)
