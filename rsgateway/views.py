"""The MATRIXX-style REST API: parse, select, call one service, render (docs/rest-api.md)."""

import io
import time

from django.db import connection
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework.permissions import IsAuthenticated
from rest_framework.views import APIView

from cards.exceptions import RedemptionBusy
from cards.services.topup import card_topup_by_ref, one_statement_topup
from common.http import client_ip
from wallets.exceptions import Malformed, NotFound, WalletError
from wallets.models import Channel, VoucherMode
from wallets.ratelimits import (
    RateDecision,
    hit_decision,
    rate_count_add,
)
from wallets.selectors import balance_by_ref, wallet_balances
from wallets.services.adjust import balance_adjust, request_fingerprint
from wallets.services.topup import balance_topup_external

from .access import (
    AUTH_FAILURE_LIMIT,
    AUTH_FAILURE_WINDOW,
    ClientBasicAuthentication,
    ClientRateThrottle,
    ClientTokenAuthentication,
    HasRequiredPermission,
)
from .credentials import credentials_in, principal_lookup, principal_lookup_and_topup
from .errors import mtx_exception_handler, mtx_ok, mtx_response, request_id_of
from .leases import leases, token_hints
from .parsers import (
    MtxJSONParser,
    MtxMessage,
    MtxTextXMLParser,
    MtxXMLParser,
    is_chunked,
    read_chunked_body,
)
from .renderers import renderer_for
from .serializers import ADJUST, TOPUP, AdjustRequest, TopupRequest, balance_record


class MtxView(APIView):
    """Base of every /rsgateway/ view: the binding (xml or json) comes from the URL."""

    binding = "xml"
    mtx_request: str | None = None
    required_permissions: tuple[str, ...] = ()
    # Whether a token's requests are counted a lease at a time (rsgateway.leases): for a view
    # whose requests are mostly one statement with it (TopupView).
    leases_requests = False
    authentication_classes = [ClientTokenAuthentication, ClientBasicAuthentication]
    permission_classes = [IsAuthenticated, HasRequiredPermission]
    throttle_classes = [ClientRateThrottle]
    metadata_class = None  # OPTIONS answers 405 like any other method we do not serve
    # One renderer, chosen by the URL: DRF would otherwise add `Vary: Accept` to every reply.
    renderer_classes = ()

    @property
    def allowed_methods(self):
        return [m for m in super().allowed_methods if m != "OPTIONS"]

    def get_parsers(self):
        if self.binding == "json":
            return [MtxJSONParser()]
        return [MtxXMLParser(), MtxTextXMLParser()]

    def get_renderers(self):
        return [renderer_for(self.binding)]

    def perform_content_negotiation(self, request, force=False):
        renderer = self.get_renderers()[0]
        return renderer, renderer.media_type

    def get_exception_handler(self):
        return mtx_exception_handler

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if getattr(request, "request_id", None):
            response["X-Request-Id"] = request.request_id
        # Balances and results are one caller's, of one moment: no cache (browser or proxy)
        # may keep or replay them.
        response["Cache-Control"] = "no-store"
        return response

    def _auth_failure_key(self, request) -> str:
        # The address the panel's lockout counts; callers without a readable one share a count.
        return f"rsgateway-auth-failures:{client_ip(request) or 'unknown'}"

    def handle_exception(self, exc):
        if isinstance(exc, AuthenticationFailed):
            rate_count_add(key=self._auth_failure_key(self.request), period=AUTH_FAILURE_WINDOW)
        return super().handle_exception(exc)

    def initial(self, request, *args, **kwargs):
        request.request_id = request_id_of(request)
        if self.authentication_classes:
            # One query: this address's wrong credentials, and the user the credentials name
            # (authentication, permissions and the API client then need no query of their own).
            token, username = credentials_in(request)
            now = time.time()
            throttle = next(
                (t for t in self.get_throttles() if isinstance(t, ClientRateThrottle)), None
            )
            count = None
            if throttle is not None and self.required_permissions and token is not None:
                count = throttle.count_in_lookup(self, now)
            principal = None
            if count is not None and connection.vendor == "postgresql":
                principal = self._lookup_on_lease(request, token, count)
            if principal is None:
                principal = principal_lookup(
                    token=token,
                    username=username,
                    address_key=self._auth_failure_key(request),
                    address_period=AUTH_FAILURE_WINDOW,
                    count=count,
                )
                if principal.counted is not None:
                    self._counted(request, token, principal, throttle, count, now)
            request.mtx_principal = ((token, username), principal)
            if principal.address_failures >= AUTH_FAILURE_LIMIT:
                raise Throttled(
                    AUTH_FAILURE_WINDOW, "Too many wrong credentials from this address."
                )
            if getattr(request, "mtx_vouched", False):
                self._vouched_initial(request, token, principal.user, *args, **kwargs)
                return
        super().initial(request, *args, **kwargs)
        if self.mtx_request and is_chunked(request):
            # After authentication: nobody unknown makes us read a body.
            read_chunked_body(request._request)

    def _vouched_initial(self, request, token, user, *args, **kwargs) -> None:
        """APIView.initial for a request _lookup_on_lease vouched for: its statement checked
        what authentication (the token's active user), the permissions (passes_checks) and the
        throttle (a request of the lease) check, so DRF's classes would only repeat it."""
        self.format_kwarg = self.get_format_suffix(**kwargs)
        request.accepted_renderer, request.accepted_media_type = self.perform_content_negotiation(
            request
        )
        request.version, request.versioning_scheme = self.determine_version(
            request, *args, **kwargs
        )
        request._authenticator = next(
            a for a in request.authenticators if isinstance(a, ClientTokenAuthentication)
        )
        request.user, request.auth = user, Token(key=token, user=user)

    @staticmethod
    def _counted(request, token, principal, throttle, count, now) -> None:
        """What the credentials query counted: the request's throttle decision, and the rest of
        a lease kept for the next requests of this token (rsgateway.leases)."""
        previous, current, allowed = principal.counted
        decision = hit_decision(
            previous,
            current,
            allowed,
            limit=throttle.num_requests,
            period=throttle.duration,
            now=now,
        )
        key = f"{count['throttle_prefix']}{principal.user.pk}"
        request.mtx_counted = (key, decision, count["n"])
        if allowed:
            leases.keep(key, count["slot"], count["n"] - 1)
            token_hints.remember(token, principal.user.pk)

    def _lookup_on_lease(self, request, token, count):
        """With a token this process authenticated before and a request left of its client's
        lease (rsgateway.leases): the caller looked up without counting, and with the view's
        work in the same statement when it has one (one_statement). The Principal; None (a
        request taken back, nothing done) to look up and count as usual."""
        user_id = token_hints.user_of(token)
        if user_id is None:
            return None
        planned = self.one_statement(request)
        key, slot = f"{count['throttle_prefix']}{user_id}", count["slot"]
        if not leases.take(key, slot):
            return None
        address_key = self._auth_failure_key(request)
        if planned is None:
            principal = principal_lookup(
                token=token, address_key=address_key, address_period=AUTH_FAILURE_WINDOW
            )
            done = False
        else:
            looked = principal_lookup_and_topup(
                token=token,
                expected_user=user_id,
                required=count["required"],
                address_key=address_key,
                address_period=AUTH_FAILURE_WINDOW,
                address_limit=AUTH_FAILURE_LIMIT,
                topup=planned,
            )
            if looked is None:
                # A lock stayed taken: nothing written. The usual lookup counts the request,
                # and the view answers that it may be sent again.
                leases.give_back(key, slot)
                request.mtx_busy = True
                return None
            principal, done = looked
        user = principal.user
        if user is None or user.pk != user_id or not self.passes_checks(principal):
            # Not counted, as the credentials query would not count it.
            leases.give_back(key, slot)
            if user is None or user.pk != user_id:
                token_hints.forget(token)
            return principal
        request.mtx_counted = (key, RateDecision(allowed=True), 1)
        request.mtx_vouched = True
        request.mtx_one_statement = planned is not None
        request.mtx_topped_up = done
        return principal

    def one_statement(self, request):
        """The view's work as a statement credentials.principal_lookup_and_topup runs with
        the lookup (TopupView), or None."""
        return None

    def passes_checks(self, principal) -> bool:
        """Whether the Principal passes authentication and HasRequiredPermission here: what
        the credentials query counts."""
        user = principal.user
        if user is None or not user.is_active or principal.reseller_scoped:
            return False
        codenames = {perm.split(".", 1)[1] for perm in self.required_permissions}
        return user.is_superuser or bool(principal.permissions & codenames)

    def message(self, request) -> MtxMessage:
        data = request.data
        if not isinstance(data, MtxMessage):
            raise Malformed(f"The request body must be a {self.mtx_request}.")
        return data


class TopupView(MtxView):
    """PUT …/wallet/{resourceId}/topup with MtxRequestSubscriberTopupBalance."""

    mtx_request = TOPUP
    required_permissions = ("wallets.topup_balance",)
    leases_requests = True
    # The largest body one_statement reads before the caller's checks (a top-up is ~150 B).
    BODY_BEFORE_CHECKS = 4096

    def one_statement(self, request):
        """one_statement_topup for this request's body, or None: read with the parser DRF
        would choose, and any body it would refuse is left for it to refuse. Only for a token
        that authenticated before (MtxView._lookup_on_lease), and a small body."""
        if request.method != "PUT":
            return None
        length = request.META.get("CONTENT_LENGTH") or ""
        if is_chunked(request) or not length.isdigit():
            return None
        if int(length) > self.BODY_BEFORE_CHECKS or client_ip(request) is None:
            return None
        parser = request.negotiator.select_parser(request, request.parsers)
        if parser is None:
            return None
        try:
            message = parser.parse(
                io.BytesIO(request._request.body),
                request.content_type,
                {"view": self, "request": request},
            )
            topup = TopupRequest.from_fields(message.fields)
            return one_statement_topup(
                owner=self.kwargs["owner"],
                ref=self.kwargs["ref"],
                resource_id=int(self.kwargs["resource_id"]),
                pin=topup.voucher,
                amount=topup.amount,
                end_time=topup.end_time,
                start_time=topup.start_time,
                channel=Channel.REST,
                request_id=request.request_id,
            )
        except WalletError:
            return None  # refused after the checks, as any other malformed request

    def put(self, request, owner, ref, resource_id):
        if getattr(request, "mtx_topped_up", False):
            return mtx_ok(self.binding)
        if getattr(request, "mtx_busy", False):
            raise RedemptionBusy()
        topup = TopupRequest.from_fields(self.message(request).fields)
        client = getattr(request.user, "api_client", None)
        if client is not None and client.voucher_mode == VoucherMode.EXTERNAL:
            balance = balance_by_ref(owner=owner, ref=ref, resource_id=int(resource_id))
            balance_topup_external(
                client=client,
                balance=balance,
                amount=topup.amount,
                voucher=topup.voucher,
                end_time=topup.end_time,
                start_time=topup.start_time,
                actor=request.user,
                channel=Channel.REST,
                request_id=request.request_id,
            )
        else:
            card_topup_by_ref(
                owner=owner,
                ref=ref,
                resource_id=int(resource_id),
                pin=topup.voucher,
                amount=topup.amount,
                end_time=topup.end_time,
                start_time=topup.start_time,
                actor=request.user,
                channel=Channel.REST,
                ip_address=client_ip(request),
                address_required=True,
                request_id=request.request_id,
                one_statement=not getattr(request, "mtx_one_statement", False),
            )
        return mtx_ok(self.binding)


class AdjustmentView(MtxView):
    """PUT …/wallet/{resourceId}/adjustment with MtxRequestSubscriberAdjustBalance."""

    mtx_request = ADJUST
    required_permissions = ("wallets.adjust_balance",)

    def put(self, request, owner, ref, resource_id):
        message = self.message(request)
        adjust = AdjustRequest.from_fields(message.fields)
        balance = balance_by_ref(owner=owner, ref=ref, resource_id=int(resource_id))
        key = request.META.get("HTTP_IDEMPOTENCY_KEY", "")
        if key and not (key.isprintable() and len(key) <= 255):
            raise Malformed("Idempotency-Key must be 1 to 255 printable characters.")
        balance_adjust(
            balance=balance,
            adjust_type=adjust.adjust_type,
            amount=adjust.amount,
            reason=adjust.reason,
            start_time=adjust.start_time,
            end_time=adjust.end_time,
            actor=request.user,
            channel=Channel.REST,
            request_id=request.request_id,
            idempotency_key=key,
            fingerprint=request_fingerprint(balance=balance.pk, **message.fields),
        )
        return mtx_response()


class WalletView(MtxView):
    """GET …/wallet or …/wallet/{resourceId}: the balances, so a partner can check a result."""

    required_permissions = (
        "wallets.view_balance",
        "wallets.topup_balance",
        "wallets.adjust_balance",
    )

    def get(self, request, owner, ref, resource_id=None):
        balances = wallet_balances(
            owner=owner,
            ref=ref,
            resource_id=None if resource_id is None else int(resource_id),
        )
        now = timezone.now()
        return mtx_response(
            name="MtxResponseWallet",
            BalanceArray=[balance_record(balance, now) for balance in balances],
        )


class NotFoundView(MtxView):
    """Any other path under /rsgateway/: 404 as an MtxResponse, before authentication."""

    authentication_classes = []
    permission_classes = []
    throttle_classes = []

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        raise NotFound("No such resource.")

    def http_method_not_allowed(self, request, *args, **kwargs):
        raise NotFound("No such resource.")
