"""The one Result ↔ HTTP table (docs/rest-api.md) and the exception handler that uses it.

Every failure of a /rsgateway/ request, DRF's own included, becomes an `MtxResponse` in the
request's binding; nothing else (no HTML page, no DRF default JSON) leaves the API.
"""

import functools
import logging
import math
import uuid

from django.http import Http404, HttpResponse
from django.utils import timezone
from django.views import defaults
from rest_framework import exceptions
from rest_framework.response import Response

from common.database import database_busy
from wallets.exceptions import Malformed, Result, WalletError

from .renderers import content_type_of, renderer_for

logger = logging.getLogger(__name__)

HTTP_STATUS = {
    Result.OK: 200,
    Result.MALFORMED: 400,
    Result.UNAUTHENTICATED: 401,
    Result.FORBIDDEN: 403,
    Result.NOT_FOUND: 404,
    Result.ALREADY_REDEEMED: 409,
    Result.BAD_DATA: 422,
    Result.NOT_SUPPORTED: 422,
    Result.VOUCHER_BLOCKED: 422,
    Result.VOUCHER_DORMANT: 422,
    Result.UNKNOWN_SEARCH_TERM: 422,
    Result.INTERNAL_ERROR: 500,
}
ROUTE_ID = 1
BUSY_RETRY_SECONDS = 30
MAX_REQUEST_ID = 64


def request_id_of(request) -> str:
    """The caller's X-Request-Id when it is 1 to 64 printable characters, else a fresh one."""
    supplied = request.META.get("HTTP_X_REQUEST_ID", "")
    if supplied.isprintable() and 0 < len(supplied) <= MAX_REQUEST_ID:
        return supplied
    return uuid.uuid4().hex


class LengthRequired(Malformed):
    """A chunked body the server cannot tell the end of (docs/rest-api.md, Request bodies)."""

    http_status = 411


def mtx_response(
    result: int = Result.OK,
    text: str = "OK",
    *,
    status: int | None = None,
    headers: dict | None = None,
    name: str = "MtxResponse",
    **extra,
) -> Response:
    return Response(
        mtx_data(result, text, name=name, **extra),
        status=status or HTTP_STATUS[result],
        headers=headers,
    )


@functools.cache
def _ok_body(binding: str) -> bytes:
    return renderer_for(binding).render(mtx_data(Result.OK, "OK"))


def mtx_ok(binding: str) -> HttpResponse:
    """mtx_response() in a binding, rendered once: the reply of most requests."""
    return HttpResponse(_ok_body(binding), content_type=content_type_of(renderer_for(binding)))


def mtx_data(result: int, text: str, *, name: str = "MtxResponse", **extra) -> dict:
    """An MtxResponse before rendering, in either binding."""
    return {"$": name, "RouteId": ROUTE_ID, "Result": result, "ResultText": text, **extra}


def _retry_after(seconds) -> dict:
    return {"Retry-After": str(max(1, math.ceil(seconds)))} if seconds else {}


def mtx_exception_handler(exc, context) -> Response:
    if isinstance(exc, WalletError):
        status = getattr(exc, "http_status", None) or HTTP_STATUS[exc.result]
        headers = {}
        locked_until = getattr(exc, "locked_until", None)
        if locked_until is not None:
            headers = _retry_after((locked_until - timezone.now()).total_seconds())
        elif getattr(exc, "retry_after", None):
            # Busy for a moment (cards.exceptions.RedemptionBusy: HTTP 503), nothing written.
            headers = _retry_after(exc.retry_after)
        text = f"{exc.message} (rule {exc.rule})" if exc.rule else exc.message
        return mtx_response(exc.result, text, status=status, headers=headers)
    if isinstance(exc, Http404 | exceptions.NotFound):
        return mtx_response(Result.NOT_FOUND, "Not found.")
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        auth_header = getattr(exc, "auth_header", None)
        headers = {"WWW-Authenticate": auth_header} if auth_header else None
        return mtx_response(Result.UNAUTHENTICATED, str(exc.detail), headers=headers)
    if isinstance(exc, exceptions.PermissionDenied):
        return mtx_response(Result.FORBIDDEN, str(exc.detail))
    if isinstance(exc, exceptions.Throttled):
        return mtx_response(
            Result.FORBIDDEN,
            str(exc.detail),
            status=429,
            headers=_retry_after(exc.wait),
        )
    if isinstance(exc, exceptions.MethodNotAllowed):
        allowed = context["view"].allowed_methods if context.get("view") else []
        return mtx_response(
            Result.MALFORMED,
            str(exc.detail),
            status=405,
            headers={"Allow": ", ".join(allowed)},
        )
    if isinstance(exc, exceptions.APIException):
        # UnsupportedMediaType (415), ParseError (400), NotAcceptable (406) and the like.
        return mtx_response(Result.MALFORMED, str(exc.detail), status=exc.status_code)
    if database_busy(exc):
        # SQLite's write lock held past the busy timeout (`make run` writing a large batch).
        return mtx_response(
            Result.INTERNAL_ERROR,
            "The database is busy; try again in a moment.",
            status=503,
            headers=_retry_after(BUSY_RETRY_SECONDS),
        )
    logger.exception("Unexpected error in the REST API", exc_info=exc)
    return mtx_response(Result.INTERNAL_ERROR, "Internal error.")


# --- Failures outside DRF (Django's error handlers, config/urls.py) ----------------------------
# A request refused before it reaches a view (a Host header not in ALLOWED_HOSTS, a body over
# Django's own limits) or a crash in a middleware is answered by Django's handler400/handler500.
# Under /rsgateway/ a partner's system must still get an MtxResponse it can parse.

GATEWAY_PREFIX = "/rsgateway/"


def _gateway_reply(request, result: int, text: str):
    json = request.path.startswith(GATEWAY_PREFIX + "data/json/")  # as urls._BINDINGS
    renderer = renderer_for("json" if json else "xml")
    return HttpResponse(
        renderer.render(mtx_data(result, text)),
        status=HTTP_STATUS[result],
        content_type=content_type_of(renderer),
        headers={"Cache-Control": "no-store", "X-Request-Id": request_id_of(request)},
    )


def bad_request(request, exception=None):
    if request.path.startswith(GATEWAY_PREFIX):
        return _gateway_reply(request, Result.MALFORMED, "Bad request.")
    return defaults.bad_request(request, exception)


def server_error(request):
    if request.path.startswith(GATEWAY_PREFIX):
        return _gateway_reply(request, Result.INTERNAL_ERROR, "Internal error.")
    return defaults.server_error(request)
