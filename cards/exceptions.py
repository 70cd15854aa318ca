"""Card errors. Messages are shown to people as they are: they never contain a PIN.

The messages a subscriber can meet in the client panel are marked for translation and stay
English here (REST and the admin read them as they are); the panel shows them translated
(docs/panel.md, "Languages").
"""

from django.utils.translation import gettext_noop as _

from wallets.exceptions import (
    AlreadyRedeemed,
    BadData,
    NotFound,
    Result,
    VoucherBlocked,
    WalletError,
)


class CardError(WalletError):
    """Base of card errors; `code` names the outcome for messages, audit and lockout."""

    code = "card_error"

    def __init__(self, message: str | None = None, *, card=None):
        self.card = card
        super().__init__(message)


class CardCodeInvalid(CardError, NotFound):
    code = "check_digit"
    default_message = _("This is not a valid voucher code: please check the code and try again.")


class CardNotFound(CardError, NotFound):
    code = "not_found"
    default_message = _("No voucher matches this code.")


class CardAlreadyRedeemed(CardError, AlreadyRedeemed):
    code = "already_redeemed"
    default_message = _("This voucher has already been used.")


class CardExpired(CardError, BadData):
    code = "expired"
    default_message = _("This voucher has expired.")


class CardBlocked(CardError, VoucherBlocked):
    code = "blocked"
    default_message = _("This voucher is blocked. Please contact your provider.")


class CardWrongReseller(CardError, BadData):
    code = "wrong_reseller"
    # Said so that it holds for an account linked to no provider at all, too.
    default_message = _(
        "This voucher belongs to a provider your account is not linked to, "
        "so it cannot be used here."
    )


class CardCurrencyMismatch(CardError, BadData):
    code = "currency_mismatch"
    default_message = _("This voucher's currency does not match your balance.")


class CardAmountMismatch(CardError, BadData):
    code = "amount_mismatch"
    default_message = _("The amount does not match the voucher's amount.")


class NoMainBalance(CardError, NotFound):
    code = "no_balance"
    default_message = _("Your account has no balance to credit. Please contact support.")


class GenerationError(BadData):
    """A generation request that cannot be carried out; `field` names the form field at fault."""

    def __init__(self, message: str, *, field: str = ""):
        self.field = field
        super().__init__(message)


class CardEditError(BadData):
    """A Mass Edit, delete or PIN reveal that cannot be carried out; `field` names the field."""

    def __init__(self, message: str, *, field: str = ""):
        self.field = field
        super().__init__(message)


class ImportRefused(BadData):
    """An import file that cannot be checked or imported as a whole; `message` says why (rows and
    reasons, never a PIN)."""


class CardPermissionDenied(CardEditError):
    result = Result.FORBIDDEN


class RedemptionLocked(CardError):
    """Too many failed redemptions (docs/panel.md): refused without looking the code up.

    `locked_until` says when redemption opens again. Over REST it answers HTTP 429.
    """

    result = Result.FORBIDDEN
    http_status = 429
    code = "locked"
    default_message = _("Too many wrong voucher codes. Redemption is locked for a while.")

    def __init__(self, message: str | None = None, *, locked_until=None):
        self.locked_until = locked_until
        super().__init__(message)


class RedemptionAddressUnknown(RedemptionLocked):
    """The client address cannot be read (docs/panel.md): the address count cannot be checked,
    so the attempt is refused rather than let past it. Audited, never counted."""

    code = "no_address"
    default_message = _(
        "Redemption is not available from this connection right now. Please try again later."
    )


class RedemptionBusy(WalletError):
    """The card (or balance) is held by other work, e.g. a background Mass Edit, for longer than
    a redemption waits (cards.sql.redemption.REDEMPTION_LOCK_TIMEOUT). Nothing was written and
    nothing is audited or counted: the same request a moment later may succeed. REST: Result 1,
    HTTP 503 with Retry-After (docs/rest-api.md)."""

    result = Result.INTERNAL_ERROR
    http_status = 503
    retry_after = 5
    default_message = _("This voucher is being updated right now. Please try again in a moment.")


GUESS_ERRORS = (CardNotFound, CardCodeInvalid)
"""The outcomes that mean "no card matches this code": the only ones a lockout counts."""


class CardDormant(CardError):
    """The card's box has not been recorded as delivered yet (docs/cards.md, "Dormant until
    delivered"). Not a guess: the code is a real card's, so no lockout counts it, and its
    audit event names the card and who holds its PIN before delivery."""

    result = Result.VOUCHER_DORMANT
    code = "dormant"
    default_message = _(
        "This voucher has not been released for sale yet, so it cannot be used. "
        "Please contact the shop that sold it or your provider."
    )


class PrintError(BadData):
    """A printer or print order that cannot be registered or made; `field` names the field."""

    def __init__(self, message: str, *, field: str = ""):
        self.field = field
        super().__init__(message)


class DeliveryError(BadData):
    """A delivery that cannot be recorded; `field` names the form field at fault."""

    def __init__(self, message: str, *, field: str = ""):
        self.field = field
        super().__init__(message)
