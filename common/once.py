"""One submit, one effect: a one-time token rendered in an admin form and claimed in the same
transaction as the form's effect.

A double click, a browser's resubmit or two tabs posting the same form send the same token: the
first claim commits with the effect, a second one meets the claim's unique index (waiting for
the first to commit or roll back) and takes no effect. A failed attempt rolls its claim back,
so the corrected form can be sent again with the same token. Opening the form again gives a new
token: that is how an operator makes the same change twice on purpose.

A POST without a token (a script, not a rendered form) is served as before: the token guards
against accidents of the browser, not against a user who means to post twice.
"""

import re
import secrets
from collections.abc import Callable
from typing import TypeVar

from django.db import IntegrityError, transaction

FIELD = "submission_token"
_FORMAT = re.compile(r"\A[A-Za-z0-9_-]{32}\Z")
T = TypeVar("T")


class AlreadySubmitted(Exception):
    message = (
        "This form was already submitted and took effect once; this submission changed nothing. "
        "To make the change again, open the form again."
    )


def posted_token(request) -> str:
    """The token a rendered form sent back, or '' (none, or not one we issue)."""
    token = request.POST.get(FIELD, "") if request.method == "POST" else ""
    return token if _FORMAT.match(token) else ""


def form_token(request) -> str:
    """The token to render in the form: the one it was posted with (the effect failed, the
    form is shown again) or a fresh one."""
    return posted_token(request) or secrets.token_urlsafe(24)


def once(*, token: str, claim: Callable[[str], None], apply: Callable[[], T]) -> T:
    """`apply()` in one transaction with `claim(token)`, which must raise IntegrityError for a
    token already claimed; then AlreadySubmitted and nothing applied."""
    if not token:
        return apply()
    with transaction.atomic():
        try:
            with transaction.atomic():
                claim(token)
        except IntegrityError:
            raise AlreadySubmitted from None
        return apply()
