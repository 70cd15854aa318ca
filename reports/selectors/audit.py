"""What the reports read of the cards' audit events (`CardEvent.changes`, written by cards only).

The keys of the payloads are declared by `cards/events.py`, the only code that writes them; the
reports name them only through its classes (`Edited`, `Deleted`), in
reports.selectors.history (replay.py, replayed.py).
"""

from cards.models.events import CardEventKind

# The audit events that change what a card adds to liability: Mass Edit's edits (expires_at,
# reseller) and blocks. Creation, redemption and reversal are dated by the card's own columns,
# a deletion by its `deleted` event. A delivery (`delivered`) flips the dormant flag only: it is
# read beside these for the cards replayed, and set-based for the others.
STATE_EVENT_KINDS = (CardEventKind.EDITED, CardEventKind.BLOCKED, CardEventKind.UNBLOCKED)
