"""Every reply the API gives, for the document's responses and the /rsgateway/docs/ page: its
HTTP status and Result, when it is given, which operations give it, and the headers it carries."""

from cards.exceptions import CardDormant
from rsgateway.errors import MAX_REQUEST_ID
from wallets.exceptions import Result

# Each reply the API gives: (HTTP status, Result, when, ResultText of its example). The texts are
# the server's own. Results with several statuses are listed once per status.
REPLIES = [
    (200, Result.OK, "Success.", "OK"),
    (
        400,
        Result.MALFORMED,
        "Body not well-formed, wrong root element, unknown or repeated field, a JSON number in a "
        "text field, DTD or entity, body over 64 KiB or empty; an XML encoding or charset the API "
        "cannot read; a Host header not allowed.",
        "Unknown field 'Bonus'.",
    ),
    (
        411,
        Result.MALFORMED,
        "A chunked body on a server that cannot tell where it ends: send a Content-Length.",
        "Send the body with a Content-Length.",
    ),
    (
        415,
        Result.MALFORMED,
        "A Content-Type this binding does not read.",
        'Unsupported media type "text/plain" in request.',
    ),
    (401, Result.UNAUTHENTICATED, "No or bad credentials, inactive user.", "Invalid token."),
    (
        403,
        Result.FORBIDDEN,
        "Authenticated but not allowed (including reseller-scoped staff users).",
        "You do not have permission to do this.",
    ),
    (
        429,
        Result.FORBIDDEN,
        "Too many requests from this client, too many wrong credentials from this address, or "
        "card redemption locked after wrong PINs: retry after Retry-After seconds.",
        "Request was throttled. Expected available in 2 seconds.",
    ),
    (
        404,
        Result.NOT_FOUND,
        "Subscription, subscriber, balance or card voucher not found.",
        "No voucher matches this code.",
    ),
    (
        409,
        Result.ALREADY_REDEEMED,
        "Voucher already redeemed or reference already used; a reversed top-up retried.",
        "This voucher has already been used.",
    ),
    (
        422,
        Result.BAD_DATA,
        "Bad data: Amount ≤ 0 or with too many decimals (T1, T6), missing Voucher (T2), voucher "
        "expired or Amount/currency not the card's, a time rule broken (S1–S7, E1–E9), balance "
        "not live (T3), an ambiguous subscriber, an Idempotency-Key reused for another request.",
        "Amount has more than 2 decimal places. (rule T6)",
    ),
    (
        422,
        Result.NOT_SUPPORTED,
        "Not supported: top-up or adjustment of an amount meter (T5), StartTime in a top-up (T7).",
        "A top-up cannot change the start time. (rule T7)",
    ),
    (422, Result.VOUCHER_BLOCKED, "Voucher (card) blocked.", "This voucher is blocked."),
    (
        422,
        Result.VOUCHER_DORMANT,
        "Voucher (card) dormant: its printed box has not been recorded as delivered yet.",
        CardDormant.default_message,
    ),
    (
        422,
        Result.UNKNOWN_SEARCH_TERM,
        "Unknown search term in {ref}.",
        "Unknown search term 'Imsi': use an ObjectId, ExternalId+value or AccessNumber+value.",
    ),
    (
        500,
        Result.INTERNAL_ERROR,
        "Unexpected server error (logged); safe to retry.",
        "Internal error.",
    ),
    (
        503,
        Result.INTERNAL_ERROR,
        "Busy: the card or balance is held by other work (a background Mass Edit), or on SQLite "
        "the database stayed busy with another write; nothing was done, retry after Retry-After.",
        "The database is busy; try again in a moment.",
    ),
]

# Which replies each operation gives, as (HTTP status, Result).
_EVERY = {
    (200, Result.OK),
    (400, Result.MALFORMED),
    (401, Result.UNAUTHENTICATED),
    (403, Result.FORBIDDEN),
    (429, Result.FORBIDDEN),
    (404, Result.NOT_FOUND),
    (422, Result.BAD_DATA),
    (422, Result.UNKNOWN_SEARCH_TERM),
    (500, Result.INTERNAL_ERROR),
    (503, Result.INTERNAL_ERROR),
}
_WITH_BODY = _EVERY | {
    (411, Result.MALFORMED),
    (415, Result.MALFORMED),
    (422, Result.NOT_SUPPORTED),
}
TOPUP_REPLIES = _WITH_BODY | {
    (409, Result.ALREADY_REDEEMED),
    (422, Result.VOUCHER_BLOCKED),
    (422, Result.VOUCHER_DORMANT),
}
ADJUST_REPLIES = _WITH_BODY
WALLET_REPLIES = _EVERY

# Headers of the replies (components/headers). Django's own 400 and 500 pages under /rsgateway/
# (a Host not allowed, a crash in a middleware) come before any view, so they carry no Allow.
HEADERS = {
    "X-Request-Id": {
        "description": "The caller's X-Request-Id when it was 1 to 64 printable characters, "
        "else a fresh one; recorded on the ledger entries and balance events the request wrote.",
        "required": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_REQUEST_ID},
    },
    "Cache-Control": {
        "description": "Balances and results are one caller's, of one moment: never cached.",
        "required": True,
        "schema": {"const": "no-store"},
    },
    "Allow": {
        "description": "The methods this path serves (a GET path also serves HEAD). Another "
        "method answers 405, Result -1, with this header; OPTIONS is not served.",
        "required": True,
        "schema": {"type": "string", "examples": ["PUT", "GET, HEAD"]},
    },
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    },
    "WWW-Authenticate": {
        "description": "The scheme to authenticate with (HTTP Basic is accepted too).",
        "required": True,
        "schema": {"const": "Token"},
    },
}


def _header(name: str, **override) -> dict:
    return {**HEADERS[name], **override} if override else {"$ref": f"#/components/headers/{name}"}


def reply_headers(status: int) -> dict:
    headers = {"X-Request-Id": _header("X-Request-Id"), "Cache-Control": _header("Cache-Control")}
    if status in (400, 500):
        headers["Allow"] = _header("Allow", required=False)
    else:
        headers["Allow"] = _header("Allow")
    if status in (429, 503):
        headers["Retry-After"] = _header("Retry-After")
    if status == 401:
        headers["WWW-Authenticate"] = _header("WWW-Authenticate")
    return headers
