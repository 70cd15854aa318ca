"""Typed errors of the wallet engine.

Each carries its MATRIXX `Result` code (docs/rest-api.md, the Result table).
"""


class Result:
    OK = 0
    MALFORMED = -1
    UNAUTHENTICATED = -4
    FORBIDDEN = -7
    BAD_DATA = 10
    NOT_FOUND = 11
    ALREADY_REDEEMED = 19
    NOT_SUPPORTED = 40
    VOUCHER_BLOCKED = 41
    VOUCHER_DORMANT = 42
    UNKNOWN_SEARCH_TERM = -17
    INTERNAL_ERROR = 1


class WalletError(Exception):
    """Base of every rule failure. `message` is safe to show: it never contains a PIN."""

    result = Result.BAD_DATA
    default_message = "The request breaks a balance rule."

    def __init__(self, message: str | None = None, *, rule: str = ""):
        self.message = message or self.default_message
        self.rule = rule
        super().__init__(self.message)


class BadData(WalletError):
    result = Result.BAD_DATA


class NotFound(WalletError):
    result = Result.NOT_FOUND
    default_message = "Not found."


class NotSupported(WalletError):
    result = Result.NOT_SUPPORTED
    default_message = "Not supported for this balance."


class AlreadyRedeemed(WalletError):
    result = Result.ALREADY_REDEEMED
    default_message = "The voucher has already been redeemed."


class VoucherBlocked(WalletError):
    result = Result.VOUCHER_BLOCKED
    default_message = "The voucher is blocked."


class UnknownSearchTerm(WalletError):
    result = Result.UNKNOWN_SEARCH_TERM
    default_message = "Unknown search term."


class Malformed(WalletError):
    """The request itself is broken: not well-formed, wrong root element, unknown field."""

    result = Result.MALFORMED
    default_message = "The request body is not a well-formed request."


class Unauthenticated(WalletError):
    result = Result.UNAUTHENTICATED
    default_message = "Authentication credentials were not provided or are not valid."


class Forbidden(WalletError):
    result = Result.FORBIDDEN
    default_message = "You are not allowed to do this."
