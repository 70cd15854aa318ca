"""`movements()`: every movement in a window, the set-based part and the replayed cards put
together (reports.selectors.history)."""

import datetime as dt

from .replay import replay
from .replayed import replayed_cards
from .unchanged import unchanged_movements
from .window import Totals, Window


def movements(
    *,
    since: dt.datetime | None,
    until: dt.datetime,
    reseller_id: int | None = None,
    currency: str = "",
    series: str = "",
) -> list[dict]:
    """Every movement at an instant in [since, until), grouped by KEYS (the day in TIME_ZONE).

    The reseller filter (a scoped user's too) applies to the reseller a movement was made
    under: a card moved from one reseller to another leaves one and enters the other."""
    window = Window(since=since, until=until)
    filters = {k: v for k, v in (("currency", currency), ("series", series)) if v}
    totals = Totals()
    unchanged_filters = dict(filters)
    if reseller_id is not None:
        unchanged_filters["reseller_id"] = reseller_id
    unchanged_movements(totals, window, unchanged_filters)
    for card in replayed_cards(window, filters):
        replay(card, window, totals)
    rows = totals.rows()
    if reseller_id is not None:
        rows = [row for row in rows if row["reseller_id"] == reseller_id]
    return rows
