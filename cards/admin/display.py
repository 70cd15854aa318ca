"""How the card screens show a card, a count, a moment and a Mass Edit's outcome."""

import datetime as dt

from django.utils import timezone
from django.utils.html import format_html

from cards.models import TopUpCard
from cards.models.cards import CardStatus
from common.formats import count_text

DATETIME = "%m/%d/%Y %H:%M:%S %z"

FIELD_LABELS = {"expires_at": "expiration date", "reseller": "company", "blocked": "block"}


def cards_text(count: int) -> str:
    """ "1 card", "75,045 cards"."""
    return count_text(count, "card")


def moment_text(moment: dt.datetime) -> str:
    """A date and time as the card list shows them (JeraSoft's format)."""
    return f"{timezone.localtime(moment):{DATETIME}}"


def status_badge(card: TopUpCard) -> str:
    status = CardStatus(card.status)
    return format_html(
        '<span class="card-status card-status--{}"><span class="card-status__icon" '
        'aria-hidden="true"></span>{}</span>',
        status.value,
        status.label,
    )


def activated_text(card: TopUpCard) -> str:
    if card.activated_at is None:
        return "—"
    client = card.activated_by.name if card.activated_by else ""
    return f"{client} {timezone.localtime(card.activated_at):%m/%d/%Y %H:%M}".strip()


def created_text(card: TopUpCard) -> str:
    return moment_text(card.created_at)


def mass_edit_summary(changed: dict[str, int], deleted: int | None) -> str:
    """What a Mass Edit did, for its message and its job's page: each field changed on how many
    cards (in the form's order: a job's result comes back from jsonb in another), then how many
    marked cards were deleted (None: none was marked)."""
    parts = [
        f"{label} changed on {cards_text(changed[field])}"
        for field, label in FIELD_LABELS.items()
        if field in changed
    ]
    if deleted is not None:
        parts.append(f"{cards_text(deleted)} deleted")
    return "; ".join(parts)
